"""Folders written whole: built beside the target, then moved into its place
(:func:`replacing_folder`'s docstring says what survives a failure)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rmsnorm_core.spec._errors import RMSNormError


@contextmanager
def replacing_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a path (not yet created) where the caller writes the new folder; when the
    block ends normally, that folder takes ``path``'s place.

    The old folder stays whole until the new one is in place: it is moved aside
    (a rename, in a hidden staging folder beside it), the new one is renamed
    into place, and only then is the old one deleted. A failure or a signal at
    any step moves the old folder back; the hidden staging folder is removed
    on every path except the one where the old folder cannot be moved back,
    and there the error says where it is. A signal that lands once the new
    folder is in place removes the old one and goes up unchanged. The new
    folder gets the old one's mode.

    Args:
        path: the folder to write (a symlink to a folder is written through).

    Yields:
        The path the caller creates and fills.

    Raises:
        RMSNormError: ``path`` is the working directory or holds it, the parent folder
            is missing, or a step fails (one line,
            naming ``path`` and the reason).
    """
    target = Path(path).resolve()
    cwd = Path.cwd().resolve()
    if cwd == target or target in cwd.parents:  # the process's own folder, pulled away
        raise RMSNormError(
            f"cannot write {str(path)!r}: it is the current working directory or a folder "
            f"holding it ({str(cwd)!r})"
        )
    if not target.parent.is_dir():
        raise RMSNormError(
            f"cannot write {str(path)!r}: folder {str(target.parent)!r} does not exist"
        )
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as err:
        raise RMSNormError(f"cannot write {str(path)!r}: {err.strerror}") from None
    new, aside = staging / "new", staging / "old"
    keep_staging = False
    try:
        yield new
        if not new.is_dir():
            raise RMSNormError(f"cannot write {str(path)!r}: the writer made no folder")
        try:
            if os.path.lexists(target):
                os.chmod(new, stat.S_IMODE(os.stat(target).st_mode))
                os.rename(target, aside)
            os.rename(new, target)
        except BaseException as err:
            # judged from the folders, not a flag: a signal can land between a rename
            # and the next statement
            if not os.path.lexists(new):  # the new folder is in place: the old one goes
                raise
            if os.path.lexists(aside):
                keep_staging = not _move_back(aside, target)
                if keep_staging:
                    raise RMSNormError(
                        f"cannot write {str(path)!r}: {_reason(err)}; the previous folder "
                        f"could not be moved back and is at {str(aside)!r}"
                    ) from None
            if isinstance(err, OSError):
                raise RMSNormError(f"cannot write {str(path)!r}: {_reason(err)}") from None
            raise
    except OSError as err:  # from the caller's block
        raise RMSNormError(f"cannot write {str(path)!r}: {_reason(err)}") from None
    except RMSNormError as err:  # a file writer's error names the target, not the staging
        # a writer's own temporary sibling (``new.tmp-123``) stands for the target too
        message = re.sub(re.escape(str(new)) + r"[^/'\"\s]*", str(Path(path)), str(err))
        raise type(err)(message) from None
    finally:
        if not keep_staging:
            shutil.rmtree(staging, ignore_errors=True)


def _move_back(aside: Path, target: Path) -> bool:
    try:
        os.rename(aside, target)
    except OSError:
        return False
    return True


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return type(err).__name__
