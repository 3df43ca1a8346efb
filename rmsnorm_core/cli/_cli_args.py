"""Argument parsing shared by the ``rmsnorm`` subcommands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Collection, Iterable
from typing import Any

from rmsnorm_core.cli._cli_paths import CommandPaths
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError, did_you_mean
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


class Parser(argparse.ArgumentParser):
    """argparse's parser, answering a mistake as a user needs: a value outside an
    option's choices (a subcommand, ``--names``) names the close matches, and
    :meth:`refuse_unknown` reports arguments a subcommand does not take with that
    subcommand's usage line (argparse alone answers them with the top-level one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.option_names: list[str] = []  # before argparse's own add_argument("-h")
        self.commands: dict[str, Parser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """argparse's ``add_argument``; the option strings are kept for suggestions."""
        action = super().add_argument(*args, **kwargs)
        self.option_names += action.option_strings
        return action

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as err:
            hint = did_you_mean(value, [str(c) for c in action.choices or ()])
            if not hint or "did you mean" in str(err):
                raise
            raise argparse.ArgumentError(action, f"{err.message}{hint}") from None

    def refuse_unknown(self, command: str, unknown: list[str]) -> None:
        """Exit 2 with ``rmsnorm COMMAND``'s usage line: ``unknown`` are arguments it
        does not take; for each option among them, the close matches among its own
        options and the other commands that take it."""
        parser = self.commands.get(command, self)
        notes = []
        for token in unknown:
            name = token.partition("=")[0]
            if not name.startswith("-"):
                continue
            elsewhere = [c for c, p in self.commands.items() if name in p.option_names]
            if elsewhere:
                owners = ", ".join(f"rmsnorm {c}" for c in elsewhere)
                notes.append(f"; {name} is an option of {owners}")
            else:  # options share their "--": only a near-identical name is offered
                notes.append(did_you_mean(name, parser.option_names, cutoff=0.8))
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{''.join(notes)}")


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
                f"{did_you_mean(field, fields or ())}"
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
