"""The ``rmsnorm`` command line.

Exit codes: 0 success, 1 failure (a file that cannot be read or written, a
check that fails), 2 bad usage (unknown options, bad values; argparse's
convention), 130 after Ctrl-C. Errors print one line naming the problem, never a
traceback. SIGTERM and SIGHUP unwind a command as Ctrl-C does (its temporary files
and child processes are cleaned up), then end the process as that signal does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rmsnorm_core.cli._cli_args import parse_overrides
from rmsnorm_core.cli._cli_paths import check_command_paths, no_paths
from rmsnorm_core.cli._cli_signals import Stopped, stop_signals_unwind, take_usual_course
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError
from rmsnorm_core.spec._spec import RMSNormSpec, preset, presets


def _cmd_presets(args: argparse.Namespace) -> int:
    for name, spec in presets().items():
        print(f"{name:8s} {spec!r}")
    return 0


def _cmd_spec(args: argparse.Namespace) -> int:
    base = preset(args.preset) if args.preset else RMSNormSpec()
    print(base.replace(**parse_overrides(args.set)).to_json(indent=2))
    return 0


def build_parser(*, with_backends: bool = False) -> argparse.ArgumentParser:
    """Return the argument parser (subcommands register here).

    ``with_backends`` adds the options backends contribute (``export``'s
    artifact flags); finding them imports the frameworks, so only the
    commands that need them pay for it.
    """
    parser = argparse.ArgumentParser(
        prog="rmsnorm",
        description="One RMSNorm, specified once, run identically in JAX/Flax and PyTorch.",
        epilog="Documentation: `rmsnorm docs` serves the guides and reference locally "
        "(offline; without the docs extra it says where the Markdown is). "
        "`rmsnorm COMMAND --help` for each command.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("presets", help="list the presets and their specs")
    p.set_defaults(func=_cmd_presets, paths=no_paths)
    p = sub.add_parser("spec", help="print a spec as JSON (a preset, with overrides)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(with_backends=command == "export")
    args = parser.parse_args(argv)
    try:
        check_command_paths(args)  # every command: no output over an input or another output
        with stop_signals_unwind():
            return int(args.func(args))
    except Stopped as stopped:  # cleaned up on the way out
        return take_usual_course(stopped)
    except KeyboardInterrupt:
        print(f"rmsnorm {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except RMSNormError as err:
        # Arguments that are missing, contradictory or malformed (and any bad spec
        # value given to `spec`) are usage errors; files that cannot be read or
        # checks that fail are failures.
        print(f"rmsnorm {args.command}: error: {err}", file=sys.stderr)
        usage = isinstance(err, RMSNormUsageError) or args.command == "spec"
        return 2 if usage else 1
    except OSError as err:
        print(f"rmsnorm {args.command}: error: {err.strerror}: {err.filename!r}", file=sys.stderr)
        return 1
    except (RecursionError, MemoryError) as err:  # hostile input that got past the checks
        what = "nested too deeply" if isinstance(err, RecursionError) else "too large"
        print(f"rmsnorm {args.command}: error: an input is {what} to process", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
