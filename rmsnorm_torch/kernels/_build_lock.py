"""The native operator's build folder lock (``_cpu_op``): one builder at a time, and
nothing left to wait for by a builder that died."""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # not a POSIX system
    fcntl = None  # type: ignore[assignment]

__all__ = ["FOLDER_LOCK", "compiling_in", "folder_held"]

FOLDER_LOCK = "builder.lock"
"""The lock file's name in the build folder."""


@contextlib.contextmanager
def folder_held(directory: str, deadline: float) -> Iterator[bool]:
    """Hold the build folder (an advisory ``flock`` on ``builder.lock``; True once held,
    False at ``deadline``): every process of this package builds or loads the operator
    only while holding it. The kernel releases a ``flock`` when its process dies, so a
    builder killed mid-build (SIGKILL, Ctrl-C, out of memory) never leaves it held; the
    file lock torch's own build takes (``lock``, which it deletes when done and a killed
    builder leaves behind, on which every later build would wait) is then stale by
    construction whenever this one is held, and is removed. Without ``fcntl`` (not a
    POSIX system) torch's lock alone serializes builds."""
    if fcntl is None:
        yield True
        return
    # never through a link (nothing outside the folder is created or locked), never
    # blocking on a FIFO; only a regular file is a lock
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    path = os.path.join(directory, FOLDER_LOCK)
    fd = os.open(path, flags, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:  # another process builds or loads it: wait for it
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.2)
        lock = os.path.join(directory, "lock")
        if os.path.exists(lock):  # a builder died: its ninja and compiler may still run
            while compiling_in(directory) and time.monotonic() < deadline:
                time.sleep(0.5)
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock)
        yield True
    finally:
        os.close(fd)  # releases the flock


def compiling_in(directory: str) -> bool:
    """Whether another process works in ``directory`` (Linux: ``/proc/<pid>/cwd``): the
    ninja and compiler of a builder that died mid-build go on as orphans, and a second
    build beside them would write the same files."""
    here = os.path.realpath(directory)
    with contextlib.suppress(OSError):
        for pid in os.listdir("/proc"):
            if pid.isdigit() and int(pid) != os.getpid():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/cwd") == here:
                        return True
    return False
