"""Argument parsing shared by the ``rmsnorm`` subcommands."""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rmsnorm_core.spec._errors import RMSNormUsageError


def help_text(doc: str | None) -> str:
    """A command module's docstring as its ``--help`` description: reST's ````code````
    becomes ```code```, which reads the same in a terminal and on the docs' CLI page
    (where the help is shown verbatim)."""
    return re.sub(r"``(.+?)``", r"`\1`", doc or "", flags=re.S)


def command_parser(sub: Any, name: str, summary: str, doc: str | None) -> argparse.ArgumentParser:
    """The subcommand ``name``: ``summary`` in ``rmsnorm --help``, its module docstring
    ``doc`` (through :func:`help_text`, line breaks kept) as its own ``--help``."""
    return sub.add_parser(
        name,
        help=summary,
        description=help_text(doc),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


#: Longest ``--set`` value read (no spec field needs more).
MAX_VALUE = 256


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as a dict; VALUE is read as JSON, else as a string.

    Raises:
        RMSNormUsageError: an item without ``=``.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep:
            raise RMSNormUsageError(f"--set {item[:80]!r} is not accepted; expected FIELD=VALUE")
        if len(value) > MAX_VALUE:
            raise RMSNormUsageError(
                f"--set {field[:40]}=... is not accepted; the value has {len(value)} characters "
                f"(at most {MAX_VALUE})"
            )
        try:
            overrides[field] = json.loads(value)
        except RecursionError:
            raise RMSNormUsageError(f"--set {field[:40]}: the value is nested too deeply") from None
        except ValueError:  # not JSON (or an integer too long to convert): a plain string
            overrides[field] = value
    return overrides


def refuse_collisions(inputs: dict[str, Path], outputs: dict[str, Path]) -> None:
    """Refuse an output that is an input or another output (paths resolved, links
    followed): a writer must never destroy a file it did not write.

    Raises:
        RMSNormUsageError: naming both sides.
    """
    seen = {os.path.realpath(path): what for what, path in inputs.items()}
    for label, out in outputs.items():
        key = os.path.realpath(out)
        if key in seen:
            raise RMSNormUsageError(
                f"{label} {str(out)!r} is the same file as {seen[key]}; give every output "
                "its own path, apart from the inputs"
            )
        seen[key] = label
