"""The ``rmsnorm`` command line.

Exit statuses (:data:`EXIT_STATUSES`, also in ``rmsnorm --help``): 0 success; 1 a
check ran and failed (``verify``, ``export``, ``bench --check``), and nothing else; 2
an error before or instead of a result: bad arguments (argparse's convention), an
input that is missing, unreadable or invalid (a damaged checkpoint, bad JSON, a
refused spec) or an output that cannot be written; 130 after Ctrl-C. Errors print one
line naming the problem, never a traceback. SIGTERM and SIGHUP unwind a command as
Ctrl-C does (its temporary files and child processes are cleaned up), then end the
process as that signal does.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import textwrap
from collections.abc import Sequence

from rmsnorm_core.cli._cli_args import EXIT_STATUSES, Parser, parse_overrides, spec_fields
from rmsnorm_core.cli._cli_paths import check_command_paths, no_paths, writes_to_stdout
from rmsnorm_core.cli._cli_signals import Stopped, stop_signals_unwind, take_usual_course
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._spec import RMSNormSpec, preset, presets


def presets_table() -> list[str]:
    """``rmsnorm presets``: one row per preset, a column per field in which presets
    differ (eps to 8 significant digits, so the table fits 100 columns), then the
    fields all of them share, then where the exact specs are."""
    specs = presets()
    fields = [f.name for f in dataclasses.fields(RMSNormSpec)]
    varying = [f for f in fields if len({repr(getattr(s, f)) for s in specs.values()}) > 1]

    def shown(spec: RMSNormSpec, field: str) -> str:
        value = getattr(spec, field)
        return f"{value:.8g}" if field == "eps" else str(value)

    rows = [["preset", *varying]] + [[n, *(shown(s, f) for f in varying)] for n, s in specs.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    first = next(iter(specs.values()))
    shared = ", ".join(f"{f}={getattr(first, f)!r}" for f in fields if f not in varying)
    lines += ["", *textwrap.wrap(f"Every preset has {shared}.", 88)]
    lines.append("`rmsnorm spec NAME` prints one exactly (JSON); `rmsnorm presets --full` all.")
    return lines


def _cmd_presets(args: argparse.Namespace) -> int:
    if args.full:
        for name, spec in presets().items():
            print(f"{name:8s} {spec!r}")
    else:
        print("\n".join(presets_table()))
    return 0


def _cmd_spec(args: argparse.Namespace) -> int:
    base = preset(args.preset) if args.preset else RMSNormSpec()
    print(base.replace(**parse_overrides(args.set, fields=spec_fields())).to_json(indent=2))
    return 0


def build_parser(*, with_backends: bool = False) -> Parser:
    """Return the argument parser (subcommands register here).

    ``with_backends`` adds the options backends contribute (``export``'s
    artifact flags); finding them imports the frameworks, so only the
    commands that need them pay for it.
    """
    parser = Parser(
        prog="rmsnorm",
        description="One RMSNorm, specified once, run identically in JAX/Flax and PyTorch.",
        epilog="Documentation: `rmsnorm docs` serves the guides and reference locally "
        "(offline; without the docs extra it says where the Markdown is). "
        "`rmsnorm COMMAND --help` for each command. " + EXIT_STATUSES,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("presets", help="list the presets and their specs", epilog=EXIT_STATUSES)
    p.add_argument("--full", action="store_true", help="each preset's whole spec (wide lines)")
    p.set_defaults(func=_cmd_presets, paths=no_paths)
    p = sub.add_parser(
        "spec", help="print a spec as JSON (a preset, with overrides)", epilog=EXIT_STATUSES
    )
    p.add_argument("preset", nargs="?", help="preset name (default: the spec defaults)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a field; VALUE is read as JSON, else as a string",
    )
    p.set_defaults(func=_cmd_spec, paths=no_paths)
    from rmsnorm_core.cli import (
        _cli_bench,
        _cli_convert,
        _cli_docs,
        _cli_export,
        _cli_infer,
        _cli_verify,
    )

    _cli_verify.add_parser(sub)
    _cli_bench.add_parser(sub)
    _cli_infer.add_parser(sub)
    _cli_convert.add_parser(sub)
    _cli_export.add_parser(sub, with_backends=with_backends)
    _cli_docs.add_parser(sub)
    parser.commands = dict(sub.choices)
    return parser


#: The exit status of an error (argparse exits with it for bad arguments too).
ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(with_backends=command == "export")
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # answered with the subcommand's usage, not the top-level one
        parser.refuse_unknown(args.command, unknown)
    try:
        check_command_paths(args)  # every command: no output over an input or another output
        # an artifact written to stdout keeps the stream to itself: the lines go to stderr
        lines = sys.stderr if writes_to_stdout(args) else sys.stdout
        with stop_signals_unwind(), contextlib.redirect_stdout(lines):
            return int(args.func(args))
    except Stopped as stopped:  # cleaned up on the way out
        return take_usual_course(stopped)
    except KeyboardInterrupt:
        print(f"rmsnorm {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except RMSNormError as err:  # bad arguments, a bad input: never a failed check
        print(f"rmsnorm {args.command}: error: {err}", file=sys.stderr)
        return ERROR
    except OSError as err:
        print(f"rmsnorm {args.command}: error: {err.strerror}: {err.filename!r}", file=sys.stderr)
        return ERROR
    except (RecursionError, MemoryError) as err:  # hostile input that got past the checks
        what = "nested too deeply" if isinstance(err, RecursionError) else "too large"
        print(f"rmsnorm {args.command}: error: an input is {what} to process", file=sys.stderr)
        return ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
