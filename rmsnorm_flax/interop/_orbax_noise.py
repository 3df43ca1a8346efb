"""What Orbax prints around a failed read or write of a checkpoint, dropped because our
one-line error already says it (``rmsnorm convert`` promises one line and no tracebacks).

A damaged checkpoint makes Orbax start several TensorStore reads at once; when one
fails, Orbax gives up (or logs and returns no tree metadata) while the others are still
running. What happens to those depends on timing, so each of these shows in some runs
and not others (all three were seen, the last only on a loaded machine):

* absl's warning "Failed to get item metadata from directory <path>": Orbax logs it and
  returns no tree metadata, which :func:`~rmsnorm_flax.interop._orbax.read_layers`
  turns into its error;
* ``RuntimeError: Event loop is closed`` printed as "Exception ignored": a read finishing
  after Orbax closed its event loop calls back into it from TensorStore's thread (up to
  a millisecond after the failure, measured);
* asyncio's "Task exception was never retrieved" or "Future exception was never
  retrieved" with the read's error: a read failing before the loop closed, whose task or
  future nobody awaits, logged when it is collected (the Future form was seen once, in
  CI, on a loaded machine).

:func:`quiet_reads_of` installs, once, a ``sys.unraisablehook`` and a filter on the
``absl`` and ``asyncio`` loggers that drop exactly these for the checkpoints read
through it: the callback by its frame, the log records by the path they name. Any
other unraisable exception or record passes on unchanged.
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import Any

_read: set[str] = set()  # every checkpoint path read: a collected task may come late
_written: set[str] = set()  # every staging folder written: its threads may log late
_NEVER_RETRIEVED = ("Task exception was never retrieved", "Future exception was never retrieved")


def quiet_reads_of(path: Path) -> None:
    """Drop Orbax's noise about reads of ``path`` (an absolute path) from now on."""
    if not (_read or _written):
        _install()
    _read.add(str(path))


def quiet_writes_to(path: Path) -> None:
    """Drop absl's records naming ``path`` (an absolute path, a fresh staging folder that
    only this write uses) from now on: a failed save logs its error with a traceback
    from each of its threads, which our one-line error already says."""
    if not (_read or _written):
        _install()
    _written.add(str(path))


def _install() -> None:
    before = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        exc, tb = unraisable.exc_value, unraisable.exc_traceback
        frames = traceback.extract_tb(tb) if tb is not None else []
        if not (
            isinstance(exc, RuntimeError)
            and str(exc) == "Event loop is closed"
            and any(f.name == "call_soon_threadsafe" for f in frames)
        ):
            before(unraisable)

    sys.unraisablehook = hook
    logging.getLogger("absl").addFilter(_is_not_noise)
    logging.getLogger("asyncio").addFilter(_is_not_noise)


def _is_not_noise(record: logging.LogRecord) -> bool:
    """False for the two log records above about a checkpoint read here, and for absl's
    records naming a folder written through :func:`quiet_writes_to`."""
    if record.name == "absl":
        text = record.getMessage()
        if any(p in text for p in _written):
            return False
        return not any(
            text.startswith(f"Failed to get item metadata from directory {p}.") for p in _read
        )
    if record.name == "asyncio" and record.exc_info:
        if str(record.msg).startswith(_NEVER_RETRIEVED):
            error = str(record.exc_info[1])
            return not any(f'"{p}/' in error or f"'{p}/" in error for p in _read)
    return True
