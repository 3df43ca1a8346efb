"""Argument parsing shared by the ``rmsnorm`` subcommands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

from rmsnorm_core.cli._cli_paths import CommandPaths
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError
from rmsnorm_core.spec._json import NotJSON, loads_strict


def help_text(doc: str | None) -> str:
    """A command module's docstring as its ``--help`` description: reST's ````code````
    becomes ```code```, which reads the same in a terminal and on the docs' CLI page
    (where the help is shown verbatim)."""
    return re.sub(r"``(.+?)``", r"`\1`", doc or "", flags=re.S)


EXIT_STATUSES = (
    "Exit status: 0 success; 1 a check ran and failed (verify, export, bench --check); "
    "2 an error: bad arguments, a missing, unreadable or invalid input (file, JSON, spec), "
    "or an output that cannot be written. Errors are one line on stderr."
)
"""The exit statuses of every command, the epilog of every ``--help``."""


def command_parser(
    sub: Any,
    name: str,
    summary: str,
    doc: str | None,
    *,
    paths: Callable[[argparse.Namespace], CommandPaths],
) -> argparse.ArgumentParser:
    """The subcommand ``name``: ``summary`` in ``rmsnorm --help``, its module docstring
    ``doc`` (through :func:`help_text`, line breaks kept) as its own ``--help``, the
    exit statuses (:data:`EXIT_STATUSES`) as its epilog.

    ``paths`` (required: no command may skip it) returns the files a run reads and
    writes; ``main`` checks them against each other before the command runs
    (``_cli_paths``).
    """
    parser = sub.add_parser(
        name,
        help=summary,
        description=help_text(doc),
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(paths=paths)
    return parser


#: Longest ``--set`` value read (no spec field needs more).
MAX_VALUE = 256


def parse_overrides(
    items: Iterable[str], *, flag: str = "--set", fields: Collection[str] | None = None
) -> dict[str, Any]:
    """``FIELD=VALUE`` items as a dict; VALUE is read as JSON, else as a string.

    Args:
        items: the arguments, as given.
        flag: the option they came from, named in errors (``--set``, ``--init``).
        fields: the accepted FIELD names (a spec's fields); None accepts any Python
            identifier (keyword arguments).

    Raises:
        RMSNormUsageError: naming the argument: no ``=``, a FIELD that is not
            accepted, a value too long, JSON with a key twice or an over-long integer.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep:
            raise RMSNormUsageError(f"{flag} {item[:80]!r} is not accepted; expected FIELD=VALUE")
        known = field in fields if fields is not None else field.isidentifier()
        if not known:
            accepted = (
                f"one of {', '.join(fields)}" if fields is not None else "a Python identifier"
            )
            raise RMSNormUsageError(
                f"{flag} {item[:80]!r} is not accepted; FIELD={field[:40]!r} must be {accepted}"
            )
        if len(value) > MAX_VALUE:
            raise RMSNormUsageError(
                f"{flag} {field[:40]}=... is not accepted; the value has {len(value)} characters "
                f"(at most {MAX_VALUE})"
            )
        try:
            overrides[field] = loads_strict(value, f"{flag} {field[:40]}=...")
        except NotJSON:  # not JSON: a plain string
            overrides[field] = value
        except RMSNormError as err:  # JSON with a key twice, an over-long integer
            raise RMSNormUsageError(str(err)) from None
    return overrides


def spec_fields() -> list[str]:
    """The FIELD names ``--set`` accepts: the spec's fields."""
    import dataclasses

    from rmsnorm_core.spec._spec import RMSNormSpec

    return [f.name for f in dataclasses.fields(RMSNormSpec)]
