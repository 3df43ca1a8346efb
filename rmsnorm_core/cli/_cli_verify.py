"""``rmsnorm verify``: the cross-framework parity matrix.

With no arguments: every preset x float32/bfloat16/float16 x axes cases
(trailing, non-trailing, several axes, partial, residual, empty batch) x every
backend. ``--preset`` narrows the presets, ``--spec FILE.json`` verifies one
spec, ``--set FIELD=VALUE`` changes a field of each (``--preset llama --set
eps=1e-5``; the spec is named ``llama+eps=1e-05``), ``--weights CKPT`` the
layers of a neutral checkpoint with their own parameters. ``--quick``: float32
and bfloat16, two axes cases, no compile, export or dynamo ONNX.
``--distributed`` adds the multi-process runners (``torch-dtensor-2procs``: 2
gloo processes, x sharded along a normalized dim where it divides;
``jax-2procs``: 2 processes joined by ``jax.distributed.initialize``).
``--baseline OLD.json`` compares the run with an earlier report check by check:
regressions, fixes, changed errors and outputs whose bits changed (by digest).
Exit 0 when every check passes, 1 on any failure (or, with ``--baseline``, a
regression or a bit change unless ``--allow-bit-changes``), 2 on an error (bad
arguments, a bad input file). The output: a summary per spec and dtype, a table
per runner and dtype, the skipped runners (only those this selection would have
called) with the command that installs what they need, the failing checks (all
of them with ``-v``) and, last, the exit status and why.
``docs/reference/verify-report.md`` documents the ``--report`` fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from rmsnorm_core._install import install_command
from rmsnorm_core.cli._cli_args import command_parser, parse_overrides, spec_fields
from rmsnorm_core.cli._cli_formats import load_neutral
from rmsnorm_core.cli._cli_paths import CommandPaths, make_output_folder
from rmsnorm_core.io._atomic import write_atomic
from rmsnorm_core.io._safetensors import read_regular
from rmsnorm_core.registry import _backends
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError, did_you_mean
from rmsnorm_core.spec._spec import RMSNormSpec, preset, presets
from rmsnorm_core.verify import _baseline
from rmsnorm_core.verify._output import print_results
from rmsnorm_core.verify._report_json import report_doc

#: A spec file is a few hundred bytes; anything past this is refused unread.
MAX_SPEC_BYTES = 1 << 20


def add_parser(sub: Any) -> None:
    p = command_parser(sub, "verify", "run the cross-framework parity matrix", __doc__, paths=paths)
    p.add_argument("--preset", action="append", metavar="NAME", help="preset(s) to verify")
    p.add_argument("--spec", metavar="FILE.json", help="verify one spec from a JSON file")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a field of each spec verified; VALUE is read as JSON, else as a string",
    )
    p.add_argument("--weights", metavar="CKPT", help="verify the layers of a neutral checkpoint")
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report here")
    p.add_argument(
        "--quick",
        action="store_true",
        help="a small matrix: float32 and bfloat16, the cases tagged quick",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="one line per failing check (default: 20)"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="backends run side by side in this many threads (default: 2, or 1 on one core)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="add the multi-process runners (2 local processes each: torch DTensor, JAX)",
    )
    p.add_argument(
        "--backend",
        action="append",
        metavar="NAME",
        help="only these runners (e.g. torch-eager) or backends (e.g. torch); repeatable",
    )
    p.add_argument(
        "--baseline",
        metavar="OLD.json",
        help="compare this run with an earlier --report, check by check (exit 1 on a "
        "regression or changed output bits)",
    )
    p.add_argument(
        "--allow-bit-changes",
        action="store_true",
        help="with --baseline: outputs whose bits changed do not fail the run",
    )
    p.add_argument("--diff", metavar="FILE.json", help="with --baseline: write the JSON diff here")
    p.set_defaults(func=run)


def paths(args: argparse.Namespace) -> CommandPaths:
    """The files ``verify`` reads (spec, checkpoint, baseline) and writes (report, diff)."""
    return CommandPaths(
        inputs={"--spec": args.spec, "--weights": args.weights, "--baseline": args.baseline},
        outputs={"--report": args.report, "--diff": args.diff},
    )


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in (
        "numpy",
        "ml_dtypes",
        "torch",
        "jax",
        "jaxlib",
        "flax",
        "onnx",
        "onnxruntime",
        "onnxscript",
        "rmsnorm-bridge",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    for backend in _backends.backends().values():
        out.update(backend.details())
    return out


def _progress(done: int, total: int, what: str) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    line = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what[:60]:60s}"
    if sys.stderr.isatty():
        print(line, end="", file=sys.stderr, flush=True)
    elif done == total or done % 10 == 0:
        print(line.strip(), file=sys.stderr, flush=True)


def _specs(args: argparse.Namespace) -> dict[str, RMSNormSpec]:
    """``{name: spec}`` to verify: ``--spec``'s or the presets', each with ``--set``'s
    changes. A changed spec's name says what changed, in the spec's field order
    whatever the order of the ``--set`` options (``llama+eps=1e-05``; a ``--set`` that
    changes nothing leaves the name), so two runs of one spec pair in ``--baseline``."""
    changes = parse_overrides(args.set, fields=spec_fields())
    if args.spec:
        text = read_regular(Path(args.spec), "--spec", MAX_SPEC_BYTES)
        specs = {Path(args.spec).stem: RMSNormSpec.from_json(text)}
    else:
        try:
            specs = {name: preset(name) for name in args.preset or list(presets())}
        except RMSNormError as err:
            raise RMSNormUsageError(f"--preset: {err}") from None
    if not changes:
        return specs
    try:
        changed = {name: spec.replace(**changes) for name, spec in specs.items()}
    except RMSNormError as err:
        raise RMSNormUsageError(f"--set: {err}") from None
    out = {}
    for name, spec in changed.items():
        diff = specs[name].differences(spec)  # in field order
        said = ",".join(f"{field}={now!r}" for field, (_, now) in diff.items())
        out[f"{name}+{said}" if said else name] = spec
    return out


def _runners(args: argparse.Namespace, items: list) -> tuple[dict, dict[str, str]]:
    """The runners by backend and the skipped backends and runners (name -> reason, with
    the install command), both decided by ``_verify.runners_for``; unknown names are a
    usage error. A backend that is not installed cannot list its runners, so a name
    ``BACKEND-...`` of one (``torch-eager`` without torch) stands for that backend: it
    is skipped with its install command, not refused as unknown."""
    from rmsnorm_core.verify._verify import runners_for

    if args.backend:
        available = _backends.backends()
        absent = set(_backends.unavailable())
        args.backend = [
            next((b for b in sorted(absent) if name.startswith(f"{b}-")), name)
            for name in args.backend
        ]
        known = {b.name for b in available.values()} | absent
        known |= {r.name for b in available.values() for r in b.runners}
        unknown = sorted(set(args.backend) - known)
        if unknown:
            raise RMSNormUsageError(
                f"--backend {', '.join(map(repr, unknown))} is not a runner or backend; "
                f"accepted: {', '.join(sorted(known))}{did_you_mean(unknown[0], known)}"
            )
    return runners_for(items, args.quick, args.backend, args.distributed)


def run(args: argparse.Namespace) -> int:
    from rmsnorm_core.verify import _verify

    if args.spec and args.weights:
        raise RMSNormUsageError(
            "--spec and --weights are exclusive: a checkpoint carries its specs"
        )
    if args.set and args.weights:
        raise RMSNormUsageError("--set does not go with --weights: a checkpoint carries its specs")
    if (args.diff or args.allow_bit_changes) and not args.baseline:
        raise RMSNormUsageError("--diff and --allow-bit-changes go with --baseline OLD.json")
    for flag, path in paths(args).outputs.items():  # a bad path fails before the run
        if path:
            make_output_folder(flag, path)
    before = _baseline.load_report(args.baseline) if args.baseline else None  # before the run
    start = time.perf_counter()
    if args.weights:
        layers = load_neutral(args.weights, "--weights")
        items = _verify.problems_for_weights(layers, args.quick)
    else:
        items = _verify.problems_for(_specs(args), args.quick)
    runners, skipped = _runners(args, items)
    if args.jobs < 1:
        raise RMSNormUsageError(f"--jobs {args.jobs} is not accepted; expected an int >= 1")
    matrix = _verify.run_matrix(items, runners, args.quick, _progress, args.jobs)
    print(file=sys.stderr)
    records = matrix.records
    if not records:
        what = (
            "the checkpoint holds no layers"
            if args.weights and not items
            else "no selected runner takes any of the problems"
        )
        if skipped:  # what was asked for is not installed: say what installs it
            what = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        if not _backends.backends():
            what = (
                f"no backend is installed; install one: {install_command(['torch'])} "
                "(PyTorch), '.[flax]' (JAX/Flax) or '.[all]'"
            )
        raise RMSNormUsageError(f"nothing was checked: {what}")
    seconds = time.perf_counter() - start
    diff = None
    if before is not None:
        diff = _baseline.compare_reports(
            before, [dataclasses.asdict(r) for r in records], _versions()
        )
    skips = _verify.skips(skipped, set(_backends.unavailable()))
    written = []
    if args.report:  # first: the run's record outlives a diff that cannot be written
        doc = report_doc(records, skips, versions=_versions(), seconds=seconds, jobs=args.jobs,
                         calls=matrix.calls, not_applicable=matrix.not_applicable)  # fmt: skip
        write_atomic(args.report, json.dumps(doc, indent=1, allow_nan=True).encode())
        written.append(f"report written to {args.report}")
    if diff is not None and args.diff:
        write_atomic(args.diff, json.dumps(_baseline.as_json(diff), indent=1).encode())
        written.append(f"diff written to {args.diff}")
    return print_results(matrix, skips, diff, args, seconds, written)
