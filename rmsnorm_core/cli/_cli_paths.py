"""The files a command reads and writes, checked against each other before it runs.

Every subcommand declares them (``command_parser(..., paths=...)``) and
:func:`rmsnorm_core.cli._cli.main` refuses a clash before the command's own
code runs, so a command cannot write over its inputs or write two outputs to
one file. Two paths are the same file when they resolve to one path (symlinks
followed) or name one inode (hard links: ``st_dev`` and ``st_ino``); an output
folder (written or replaced whole) clashes with every path inside it, an output
inside an input folder clashes with that folder (it would change the input),
and no output may be the current working directory or a folder holding it. A
character device is written into and never replaced, so it clashes with nothing.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rmsnorm_core.io._atomic import names_stdout
from rmsnorm_core.spec._errors import RMSNormUsageError


@dataclass(frozen=True)
class CommandPaths:
    """What one run of a command reads and writes, by the parameter that names it.

    Attributes:
        inputs: parameter label (``"--weights"``, ``"SRC"``) -> path read.
        outputs: parameter label -> path written (a file, or a folder written whole).
    """

    inputs: Mapping[str, Path | str | None] = field(default_factory=dict)
    outputs: Mapping[str, Path | str | None] = field(default_factory=dict)


def make_output_folder(flag: str, path: Path | str) -> None:
    """Before a command runs: ``path``'s folder exists or is made now, and ``path`` is not a
    folder, so a bad output path fails at once rather than after the work it would hold.

    Raises:
        RMSNormUsageError: naming ``flag``, the path and why it cannot be written.
    """
    target = Path(path)
    parent = target.resolve().parent
    try:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(0, f"{str(parent)!r} is not a folder")
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RMSNormUsageError(
            f"{flag} {str(path)!r}: cannot create its folder: {err.strerror}"
        ) from None
    if target.is_dir():
        raise RMSNormUsageError(f"{flag} {str(path)!r} is a folder; give a file path")


def no_paths(args: argparse.Namespace) -> CommandPaths:
    """``paths=`` of a command that reads and writes no file (it prints)."""
    return CommandPaths()


@dataclass(frozen=True)
class _Named:
    label: str
    path: Path
    real: str
    inode: tuple[int, int] | None
    device: bool  # a character device (/dev/null, a terminal): written into, never replaced


def _named(label: str, path: Path | str) -> _Named:
    path = Path(path)
    try:
        info = os.stat(path)
    except (OSError, ValueError):  # absent (a new output), or not a path the OS takes
        inode, device = None, False
    else:
        inode, device = (info.st_dev, info.st_ino), stat.S_ISCHR(info.st_mode)
    return _Named(label, path, os.path.realpath(path), inode, device)


def _inside(inner: str, outer: str) -> bool:
    return inner != outer and inner.startswith(outer.rstrip(os.sep) + os.sep)


def _clash(output: _Named, other: _Named) -> str | None:
    """How ``output`` would destroy ``other`` (None when it would not: two names of one
    character device, such as ``/dev/stdout`` and ``/dev/stderr`` on one terminal)."""
    if output.device and other.device:
        return None
    same = output.real == other.real or (output.inode is not None and output.inode == other.inode)
    if same:
        return "is the same file as"
    if _inside(other.real, output.real) and os.path.isdir(output.real):
        return "is a folder that holds"
    if _inside(output.real, other.real) and os.path.isdir(other.real):
        return "is inside the folder"
    return None


def _refuse_cwd(output: _Named) -> None:
    """Refuse an output that is the working directory or a folder holding it: replacing
    it whole would pull the folder the command runs in out from under it."""
    cwd = os.path.realpath(os.getcwd())
    if output.real == cwd or _inside(cwd, output.real):
        raise RMSNormUsageError(
            f"{output.label} {str(output.path)!r} is the current working directory or a folder "
            f"holding it ({cwd!r}); give an output path outside it"
        )


def refuse_collisions(
    inputs: Mapping[str, Path | str | None], outputs: Mapping[str, Path | str | None]
) -> None:
    """Refuse an output that is an input or another output (paths resolved, symlinks
    followed, hard links compared by device and inode), a folder holding one, a path
    inside an input folder, or the working directory or a folder holding it: a writer
    must never destroy a file it did not write. Entries that are None (an option not
    given) are skipped.

    Raises:
        RMSNormUsageError: naming both parameters and their paths.
    """
    seen = [_named(label, path) for label, path in inputs.items() if path is not None]
    for label, path in outputs.items():
        if path is None:
            continue
        out = _named(label, path)
        for other in seen:
            pair, how = (out, other), _clash(out, other)
            if how is None and other.label in outputs:  # an earlier output may hold this one
                pair, how = (other, out), _clash(other, out)
            if how is not None:
                first, second = pair
                raise RMSNormUsageError(
                    f"{first.label} {str(first.path)!r} {how} {second.label} "
                    f"{str(second.path)!r}; give every output its own path, apart from the inputs"
                )
        _refuse_cwd(out)  # after the clashes: those name both parameters
        seen.append(out)


def writes_to_stdout(args: argparse.Namespace) -> bool:
    """Whether one of the command's outputs is standard output (``/dev/stdout``): its
    human-readable lines then go to stderr, so the stream carries only the artifact."""
    declared: CommandPaths = args.paths(args)
    return any(path and names_stdout(path) for path in declared.outputs.values())


def check_command_paths(args: argparse.Namespace) -> None:
    """Run the command's declared path check (``args.paths``) before the command.

    Raises:
        RMSNormUsageError: a clash (see :func:`refuse_collisions`).
    """
    declared: CommandPaths = args.paths(args)
    refuse_collisions(declared.inputs, declared.outputs)
