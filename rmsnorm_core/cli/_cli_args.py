"""Argument parsing shared by the ``rmsnorm`` subcommands."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from rmsnorm_core.cli._cli_paths import CommandPaths
from rmsnorm_core.spec._errors import RMSNormUsageError


def help_text(doc: str | None) -> str:
    """A command module's docstring as its ``--help`` description: reST's ````code````
    becomes ```code```, which reads the same in a terminal and on the docs' CLI page
    (where the help is shown verbatim)."""
    return re.sub(r"``(.+?)``", r"`\1`", doc or "", flags=re.S)


def command_parser(
    sub: Any,
    name: str,
    summary: str,
    doc: str | None,
    *,
    paths: Callable[[argparse.Namespace], CommandPaths],
) -> argparse.ArgumentParser:
    """The subcommand ``name``: ``summary`` in ``rmsnorm --help``, its module docstring
    ``doc`` (through :func:`help_text`, line breaks kept) as its own ``--help``.

    ``paths`` (required: no command may skip it) returns the files a run reads and
    writes; ``main`` checks them against each other before the command runs
    (``_cli_paths``).
    """
    parser = sub.add_parser(
        name,
        help=summary,
        description=help_text(doc),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(paths=paths)
    return parser


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
