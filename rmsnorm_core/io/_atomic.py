"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``
(:func:`write_atomic`'s docstring says what a reader and the file's mode see)."""

from __future__ import annotations

import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from rmsnorm_core.spec._errors import RMSNormError


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # no read-only query elsewhere: set and restore at once
    os.umask(mask)
    return mask


#: A path that names an open descriptor rather than a file: written where it points.
_DESCRIPTOR = re.compile(
    r"/dev/(?P<name>stdout|stderr)|/dev/fd/(?P<fd>\d+)|/proc/(?P<pid>self|\d+)/fd/(?P<pfd>\d+)"
)


def _descriptor(target: Path) -> int | None:
    """This process's descriptor that ``target`` names (``/dev/stdout``, ``/dev/fd/N``,
    ``/proc/self/fd/N``), -1 for another process's (``/proc/PID/fd/N``), else None."""
    found = _DESCRIPTOR.fullmatch(os.path.normpath(os.path.abspath(target)))
    if found is None:
        return None
    if found["name"]:
        return 1 if found["name"] == "stdout" else 2
    if found["fd"]:
        return int(found["fd"])
    own = found["pid"] == "self" or int(found["pid"]) == os.getpid()
    return int(found["pfd"]) if own else -1


def names_descriptor(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names an open descriptor (``/dev/stdout``, ``/dev/fd/N``,
    ``/proc/*/fd/N``), which :func:`write_atomic` writes where it points."""
    return _descriptor(Path(path)) is not None


def names_stdout(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names this process's standard output (``/dev/stdout``,
    ``/dev/fd/1``, ``/proc/self/fd/1``): a command writing there keeps its own lines
    off that stream."""
    return _descriptor(Path(path)) == 1


def _kind(mode: int) -> str:
    """What a special file is, in words."""
    for test, name in (
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return "a special file"


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[Path], None]) -> Path:
    """Write ``data`` to ``path`` atomically: a temporary file in its folder, then
    ``os.replace``.

    What a reader of ``path`` sees is the old file or the new one, whole,
    never a part. The new file gets the mode the old one had (a ``0644``
    checkpoint stays readable by a serving process under another user), or,
    for a new file, ``0666`` less the process umask, as ``open()`` would
    give. A symlink is written through: its target is replaced and the link
    kept. Only a regular file is ever replaced: a FIFO or a character device
    (``/dev/stdout``, a shell's process substitution) gets the bytes written
    into it in place, with no rename; a socket, a block device or any other
    special file is refused. A path that names an open descriptor
    (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/*/fd/N``) is
    written where that descriptor points, whatever it is (a shell's ``>> build.log``
    gets the bytes appended), never renamed over. The hidden temporary file is removed on every
    failure path, and errors name the target, not the temporary file.

    Args:
        path: the target; an existing file is replaced whole, a symlink's
            target is replaced.
        data: the bytes, or a function that writes the file at the path it
            is given (an exporter that only writes to paths).

    Returns:
        ``path``.

    Raises:
        RMSNormError: the folder does not exist, the target is a folder or a
            special file other than a FIFO or a character device, or the
            write fails (naming the target and the reason).
    """
    target = Path(path)
    fd = _descriptor(target)
    if fd is not None:
        _write_to_descriptor(target, fd, data)
        return target
    try:
        info = os.stat(target)  # links followed as the kernel does (/dev/stdout -> a pipe)
    except FileNotFoundError:
        info = None
    except OSError as err:
        raise RMSNormError(f"cannot write {str(target)!r}: {err.strerror}") from None
    if info is not None and (stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode)):
        _write_in_place(target, data)
        return target
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise RMSNormError(
            f"cannot write {str(target)!r}: it is {_kind(info.st_mode)}; a writer replaces "
            "only a regular file (or writes into a FIFO or a character device)"
        )
    real = target.resolve() if target.is_symlink() else target
    folder = real.parent if str(real.parent) else Path(".")
    if not folder.is_dir():
        raise RMSNormError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")
    mode = 0o666 & ~_umask() if info is None else stat.S_IMODE(info.st_mode)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise RMSNormError(f"cannot write {str(target)!r}: {err.strerror}") from None
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        else:
            os.close(fd)
            data(Path(tmp))
            _fsync(tmp)  # on disk before the rename, as the bytes are
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except OSError as err:
        _remove(tmp)
        raise RMSNormError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
    except BaseException:
        _remove(tmp)
        raise
    return target


def _as_bytes(data: bytes | Callable[[Path], None]) -> bytes:
    """The bytes; a writer function first writes a private temporary file."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    fd, tmp = tempfile.mkstemp(prefix="rmsnorm-", suffix=".tmp")
    os.close(fd)
    try:
        data(Path(tmp))
        return Path(tmp).read_bytes()
    finally:
        _remove(tmp)


def _write_in_place(target: Path, data: bytes | Callable[[Path], None]) -> None:
    """Write into a FIFO or a character device: opened for writing (never created,
    never renamed over)."""
    try:
        data = _as_bytes(data)
        out = os.open(target, os.O_WRONLY | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(out, "wb") as handle:
            handle.write(data)
    except OSError as err:
        raise RMSNormError(f"cannot write {str(target)!r}: {err.strerror or err}") from None


def _write_to_descriptor(target: Path, fd: int, data: bytes | Callable[[Path], None]) -> None:
    """Write through the descriptor ``target`` names, at its offset and with its flags (a
    shell's ``>>`` appends); another process's (``fd`` -1) is opened for appending. Never
    created, truncated or renamed over; this process's descriptor is left open."""
    try:
        data = _as_bytes(data)
        for stream in (sys.stdout, sys.stderr):  # earlier text first, in order
            if stream is not None:
                stream.flush()
        out = os.open(target, os.O_WRONLY | os.O_APPEND) if fd < 0 else fd
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view) :]
        finally:
            if fd < 0:
                os.close(out)
    except OSError as err:
        raise RMSNormError(f"cannot write {str(target)!r}: {err.strerror or err}") from None


def _fsync(tmp: str) -> None:
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
