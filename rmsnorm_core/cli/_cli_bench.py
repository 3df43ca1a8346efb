"""``rmsnorm bench``: ratio benchmarks against the peers, in one process run.

Every case a backend registers (``rmsnorm_core.backends``), plus core's own,
timed against its peer in this process, in repeated alternating blocks:
after warm-up, a block is k back-to-back calls of one side (k the fewest power
of two for which the faster side's block lasts 2 ms or more: one call at a large
shape, tens to thousands at a decode shape such as [1, 4096]); each of ``--repeat``
pairs runs a block of ours and a block of the peer (the side that leads
alternates) and gives one ratio, ours / peer per call. The reported ratio is the
median of the pairs' ratios, the spread their quartiles.
Prints a table (progress on stderr while it runs), writes a JSON file, and
with ``--plots DIR`` (created if missing) two PNGs: the ratios
(``ratios.png``) and time against row length from 64 to 65536 columns at a
fixed total size (``sweep.png``; matplotlib, ``pip install -e
'.[bench]'``). ``-k`` selects benchmarks and sweeps by name; a
plot that is not written is named, with why. ``--check`` exits 1 when a ratio
is over its target and settled (its spread's lower quartile is over it too;
over the target within the spread it is "unsettled") or a case failed. Ratios,
never absolute times, are the result: these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np

from rmsnorm_core._install import install_command
from rmsnorm_core.bench._bench import (
    Benchmark,
    format_table,
    missing,
    run_one,
    run_sweep,
    write_json,
)
from rmsnorm_core.bench._load import MAX_LOAD, competing_processes
from rmsnorm_core.cli._cli_args import command_parser
from rmsnorm_core.cli._cli_paths import CommandPaths
from rmsnorm_core.io._atomic import names_descriptor
from rmsnorm_core.registry import _backends
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError, did_you_mean
from rmsnorm_core.spec._json import loads_strict


def core_benchmarks() -> list[Benchmark]:
    """Core's own: the float64 oracle against a naive NumPy RMSNorm."""

    def setup() -> Any:
        from rmsnorm_core import reference
        from rmsnorm_core.spec._spec import RMSNormSpec

        x = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
        spec = RMSNormSpec()

        def naive() -> np.ndarray:
            h = x.astype(np.float64)
            return (h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + 1e-6)).astype(np.float32)

        return (lambda: reference.rms_norm(x, spec)), naive

    return [Benchmark("core.reference.forward[f32 1024x1024]", "numpy naive float64", setup)]


def collect() -> tuple[list[Benchmark], list[Any]]:
    """Every benchmark and sweep: core's, then each backend's."""
    benches, sweeps = core_benchmarks(), []
    for backend in _backends.backends().values():
        benches.extend(backend.benchmarks())
        sweeps.extend(backend.sweeps())
    return benches, sweeps


def _peak(text: str) -> float:
    """``--peak-gbps``: a finite number > 0 (nan, inf and 0 made every fraction meaningless)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; expected a number > 0")
    return value


def _streams(path: Path) -> bool:
    """A FIFO or a character device (``/dev/stdout``): the writer writes into it."""
    mode = path.stat().st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def check_report_path(path: str, flag: str) -> None:
    """Before any benchmark runs: the report's folder exists, and a file already there
    is an earlier report of this command (never a file it did not write)."""
    target = Path(path)
    if not target.parent.is_dir():
        raise RMSNormUsageError(f"{flag} {path!r}: folder {str(target.parent)!r} does not exist")
    if names_descriptor(target) or (target.exists() and _streams(target)):
        return  # a descriptor (>> log), a FIFO or a terminal: written into, never replaced
    if target.exists():
        doc = None
        if target.is_file() and target.stat().st_size < 64 * 1024 * 1024:
            try:
                doc = loads_strict(target.read_bytes(), f"{flag} {path!r}")
            except RMSNormError:
                doc = None
        if not (isinstance(doc, dict) and {"machine", "results"} <= set(doc)):
            raise RMSNormUsageError(
                f"{flag} {path!r} exists and is not an earlier bench report; choose another path"
            )


def paths(args: argparse.Namespace) -> CommandPaths:
    """The files ``bench`` writes: the report and the plots (``--gpu``: a file named
    after the device, in its own ``--out`` folder)."""
    if args.list or args.gpu:
        return CommandPaths()
    plots = {}
    if args.plots:
        from rmsnorm_core.bench._bench_plots import PLOTS

        plots = {f"--plots {name}": Path(args.plots) / name for name in PLOTS}
    return CommandPaths(outputs={"--json": args.json, **plots})


def add_parser(sub: Any) -> None:
    p = command_parser(
        sub,
        "bench",
        "ratio benchmarks against the peers (table, JSON, plots)",
        __doc__,
        paths=paths,
    )
    p.add_argument(
        "-k", "--filter", action="append", default=None, metavar="GLOB",
        help="a glob over benchmark names, or an exact name from --list (its [...] read "
        "literally); repeat -k for several (default: every case)",
    )  # fmt: skip
    p.add_argument(
        "--repeat", type=int, default=15,
        help="timed pairs of blocks (a block of ours, a block of the peer; default 15)",
    )  # fmt: skip
    p.add_argument("--warmup", type=int, default=3, help="untimed calls of each side (default 3)")
    p.add_argument("--json", default="bench-results.json", help="report path")
    p.add_argument("--plots", metavar="DIR", help="write ratios.png and sweep.png here")
    p.add_argument(
        "--sweep", choices=["float32", "bfloat16", "none"], default="float32",
        help="dtype of the row-length sweep, or none (default float32)",
    )  # fmt: skip
    p.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="N",
        help="run N busy processes beside the cases (another workload on the cores)",
    )
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a ratio is settled over its target, or a case failed",
    )
    gpu = p.add_argument_group("accelerator bandwidth: GB/s, fraction of peak, ratio to the peer")
    gpu.add_argument("--gpu", action="store_true", help="achieved bandwidth on the GPU instead")
    gpu.add_argument("--smoke", action="store_true", help="with --gpu: a tiny shape, end to end")
    gpu.add_argument(
        "--peak-gbps", type=_peak, help="with --gpu: the device's peak, GB/s (a number > 0)"
    )
    gpu.add_argument("--out", default="benchmarks/results", help="with --gpu: results folder")
    p.set_defaults(func=run)


def selected(name: str, filters: list[str] | None) -> bool:
    """Whether ``-k`` selects ``name``: no ``-k`` selects all; else any of the filters
    equals the name (case names hold ``[...]``, which a glob reads as a character
    class) or matches it as a glob (case-sensitive on every platform)."""
    return filters is None or any(f == name or fnmatch.fnmatchcase(name, f) for f in filters)


def run_gpu(args: argparse.Namespace) -> int:
    """``--gpu``: every backend's bandwidth cases, table and ``gpu-<device>.json``."""
    from rmsnorm_core.bench import _bench_gpu as g

    shapes = g.SMOKE_SHAPES if args.smoke else g.SHAPES
    cases = [c for backend in _backends.backends().values()
             for c in backend.gpu_benchmarks(shapes, g.DTYPES, args.smoke)]  # fmt: skip
    cases = [c for c in cases if selected(f"{c.group} {c.contender}", args.filter)]
    if args.list:
        for c in cases:
            print(f"{c.group:34s} {c.contender}")
        return 0
    warmup, repeat, inner = (1, 2, 1) if args.smoke else (max(args.warmup, 5), args.repeat, 20)
    rows = []
    for i, case in enumerate(cases, 1):
        print(f"[{i}/{len(cases)}] {case.group} {case.contender}", file=sys.stderr, flush=True)
        rows.extend(g.run_cases([case], warmup=warmup, repeat=repeat, inner=inner,
                                peak=args.peak_gbps))  # fmt: skip
    g.add_ratios(rows)  # across the whole group, once every case has run
    print(g.format_rows(rows, smoke=args.smoke))
    print(f"\nwrote {g.write(rows, g.default_path(rows, args.out), args.smoke)}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1 or args.warmup < 0:
        raise RMSNormUsageError("--repeat must be >= 1 and --warmup >= 0")
    if not 0 <= args.load <= MAX_LOAD:
        raise RMSNormUsageError(f"--load {args.load}: must be between 0 and {MAX_LOAD}")
    if args.gpu:
        return run_gpu(args)
    if args.smoke or args.peak_gbps is not None:
        raise RMSNormUsageError("--smoke and --peak-gbps go with --gpu")
    if not args.list:
        check_report_path(args.json, "--json")
    if args.plots and not args.list:
        from rmsnorm_core.bench._bench_plots import check_plot_folder

        check_plot_folder(args.plots)
    benches, sweeps = collect()
    chosen = [b for b in benches if selected(b.name, args.filter)]
    sweeps = [w for w in sweeps if selected(w.name, args.filter)]
    if not chosen and not (args.list and sweeps):
        names = [b.name for b in benches] + [w.name for w in sweeps]
        given = args.filter or ["*"]
        shown = " ".join(f"-k {f!r}" for f in given)
        hint = did_you_mean(given[0], names)
        raise RMSNormUsageError(f"{shown} matches no benchmark (see --list){hint}")
    if args.list:
        for b in chosen:
            print(f"{b.name:46s} vs {b.baseline}")
        for w in sweeps:
            print(f"{w.name:46s} vs {w.baseline} (sweep)")
        return 0
    with competing_processes(args.load):
        results, swept, unswept = _run_cases(args, chosen, sweeps)
    print(format_table(results, load=args.load))
    write_json(results, args.json, swept, load=args.load)
    print(f"\nwrote {args.json}")
    if args.plots:
        from rmsnorm_core.bench._bench_plots import plot_ratios, plot_sweeps

        print(f"wrote {plot_ratios(results, Path(args.plots) / 'ratios.png')}")
        if swept:
            print(f"wrote {plot_sweeps(swept, Path(args.plots) / 'sweep.png')}")
        else:
            print(f"sweep.png not written: {unswept}")
    over = [r.name for r in results if r.status == "over target"]
    crashed = [r.name for r in results if r.status.startswith("failed")]
    if args.check and over:
        print(f"--check: {len(over)} over target: {', '.join(over)}", file=sys.stderr)
    if args.check and crashed:
        print(f"--check: {len(crashed)} failed: {', '.join(crashed)}", file=sys.stderr)
    return 1 if args.check and (over or crashed) else 0


def _run_cases(args: argparse.Namespace, chosen: list, sweeps: list) -> tuple:
    results = []
    for i, bench in enumerate(chosen, 1):
        print(f"[{i}/{len(chosen)}] {bench.name} ...", file=sys.stderr, flush=True)
        results.append(run_one(bench, warmup=args.warmup, repeat=args.repeat))
        print(f"[{i}/{len(chosen)}] {bench.name}: ratio {results[-1].ratio:.3f}", file=sys.stderr)
    swept, unswept = [], "--sweep none"
    if args.sweep != "none":
        given = " ".join(f"-k {f!r}" for f in args.filter or ["*"])
        unswept = f"{given} matches no sweep (see --list)" if not sweeps else ""
        for j, sweep in enumerate(sweeps, 1):
            absent = missing(sweep.requires)
            if absent is not None:
                unswept = (f"{sweep.name} needs {absent}, which is not installed "
                           f"({install_command([absent])})")  # fmt: skip
                continue
            print(f"[sweep {j}/{len(sweeps)}] {sweep.name}", file=sys.stderr, flush=True)
            swept.append(run_sweep(sweep, args.sweep, repeat=max(3, args.repeat // 2)))
    return results, swept, unswept
