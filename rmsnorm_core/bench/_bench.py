"""Ratio benchmarks: each candidate timed against a peer in the same process run.

A :class:`Benchmark` times a candidate against a baseline in repeated alternating
blocks (:mod:`~rmsnorm_core.bench._blocks`: a block is ``k`` back-to-back calls of one
side, sized to last long enough to time well; each pair of blocks gives a ratio); the
reported ratio is the median of the pairs' ratios and its spread their quartiles.
Absolute times drift on shared machines; ratios hold. Backends contribute their cases
(``Backend.benchmarks``, ``Backend.sweeps``); core adds its own. A :class:`Sweep` times
ours and the peer at row lengths from 64 to 65536 columns at a fixed total size, so a
user sees how cost grows with the work. Nothing here asserts speed: tests assert
behaviour.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import math
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rmsnorm_core._install import install_command
from rmsnorm_core.bench._blocks import time_pairs
from rmsnorm_core.io._atomic import write_atomic

Pair = tuple[Callable[[], object], Callable[[], object]]
#: Row lengths of a sweep, at :data:`SWEEP_ELEMENTS` elements in all.
SWEEP_COLUMNS: tuple[int, ...] = (64, 256, 1024, 4096, 16384, 65536)
SWEEP_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One case: ``setup()`` returns ``(candidate, baseline)`` callables.

    Attributes:
        name: ``"<backend>.<what>[<dtype>]"``, e.g. ``"torch.eager.forward[bfloat16]"``.
        baseline: what the candidate is timed against.
        setup: builds both callables (imports the framework).
        target: the ratio to stay at or under (reported, never asserted).
        requires: modules that must import, else the case is reported skipped.
        around: a context manager factory entered once around the whole timing of the
            case (e.g. one thread, grad mode off), so the callables themselves are one
            call each and the times are per call.
    """

    name: str
    baseline: str
    setup: Callable[[], Pair]
    target: float | None = None
    requires: tuple[str, ...] = ()
    around: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Ours and the peer across row lengths: ``setup(rows, cols, dtype) -> (ours, peer)``.

    Attributes:
        name: ``"<backend>.<what>"``, the plot's name.
        baseline: the peer ours is timed against.
        setup: builds both callables for one shape and dtype.
        requires: modules that must import, else the sweep is reported skipped.
    """

    name: str
    baseline: str
    setup: Callable[[int, int, str], Pair]
    requires: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
    """Medians in milliseconds per call and their ratio (candidate / baseline)."""

    name: str
    baseline: str
    candidate_ms: float
    baseline_ms: float
    ratio: float
    target: float | None
    status: str  # "ok", "unsettled", "over target", "skipped: <why>", "failed: <why>"
    spread: tuple[float, float] = (float("nan"), float("nan"))  # quartiles of pair ratios
    calls_per_block: int = 0  # k: calls in each timed block (0: nothing was timed)


def missing(requires: Sequence[str]) -> str | None:
    """The first module of ``requires`` that does not import, or None."""
    for module in requires:
        try:
            importlib.import_module(module)
        except ImportError:
            return module
    return None


def time_pair(
    candidate: Callable, baseline: Callable, warmup: int, repeat: int
) -> tuple[float, float]:
    """Medians (ms per call) of both (:func:`time_pairs`)."""
    times = time_pairs(candidate, baseline, warmup, repeat)
    return statistics.median(times.candidate_ms), statistics.median(times.baseline_ms)


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def run_one(bench: Benchmark, *, warmup: int = 3, repeat: int = 15) -> Result:
    """Time one benchmark in ``repeat`` pairs of blocks (:func:`time_pairs`); a missing
    framework gives a skipped result, a crash a failed one."""
    nan = float("nan")
    absent = missing(bench.requires)
    if absent is not None:
        status = f"skipped: {absent} is not installed ({install_command([absent])})"
        return Result(bench.name, bench.baseline, nan, nan, nan, bench.target, status)
    try:
        pair = bench.setup()
        with bench.around():
            times = time_pairs(*pair, warmup, repeat)
    except Exception as err:  # reported in the table, never hidden
        status = f"failed: {type(err).__name__}: {str(err)[:120]}"
        return Result(bench.name, bench.baseline, nan, nan, nan, bench.target, status)
    cands, bases = times.candidate_ms, times.baseline_ms
    cand, base = statistics.median(cands), statistics.median(bases)
    pairs = [c / b for c, b in zip(cands, bases, strict=True)]
    # the ratio is the median of the per-pair ratios, the spread their quartiles: one
    # statistic, so the ratio always lies within its spread and the verdict reads both alike
    ratio, spread = statistics.median(pairs), _quartiles(pairs)
    return Result(bench.name, bench.baseline, cand, base, ratio, bench.target,
                  judge(ratio, spread, bench.target), spread, times.calls_per_block)  # fmt: skip


def judge(ratio: float, spread: tuple[float, float], target: float | None) -> str:
    """``"ok"`` at or under ``target``; over it, ``"unsettled"`` while the spread's lower
    quartile still reaches the target (the machine's noise covers the excess: a tie
    measured on a shared machine), else ``"over target"`` (a settled excess)."""
    if target is None or ratio <= target:
        return "ok"
    return "unsettled" if spread[0] <= target else "over target"


def run_sweep(sweep: Sweep, dtype: str, *, warmup: int = 2, repeat: int = 7) -> dict[str, Any]:
    """``{"name", "dtype", "columns", "ours_ms", "peer_ms"}`` across :data:`SWEEP_COLUMNS`."""
    ours, peer = [], []
    for cols in SWEEP_COLUMNS:
        a, b = time_pair(*sweep.setup(SWEEP_ELEMENTS // cols, cols, dtype), warmup, repeat)
        ours.append(a)
        peer.append(b)
    return {"name": sweep.name, "baseline": sweep.baseline, "dtype": dtype,
            "columns": list(SWEEP_COLUMNS), "ours_ms": ours, "peer_ms": peer}  # fmt: skip


LEGEND = """\
ratio: ours / peer per call (lower is faster), timed in this run after warm-up in repeated
  alternating blocks: a block is k back-to-back calls of one side (k, shown as calls/block,
  sized so the faster side's block lasts at least 2 ms), a pair is a block of ours and a
  block of the peer (which leads alternates), and the ratio is the median over the pairs
  of their ratios (absolute times drift on a shared machine, ratios hold). ours ms and
  peer ms are each side's median time per call.
spread: the quartiles of the pairs' ratios.
target: the ratio a case should stay at or under. Above it, "unsettled" marks a ratio whose
  spread still reaches the target (noise covers the excess) and "over target" one whose
  lower quartile is above it too (a settled excess; --check makes it exit 1)."""


def format_table(results: Sequence[Result], load: int = 0) -> str:
    """A plain-text table of the results, then :data:`LEGEND` (and the load, if any)."""
    head = (
        f"{'benchmark':46s} {'baseline':40s} {'ours ms':>9s} {'peer ms':>9s} "
        f"{'calls/block':>11s} {'ratio':>7s} {'spread':>13s} {'target':>7s}  status"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        target = f"{r.target:.2f}" if r.target is not None else "-"
        spread = f"{r.spread[0]:.3f}-{r.spread[1]:.3f}"
        lines.append(
            f"{r.name:46s} {r.baseline[:40]:40s} {r.candidate_ms:9.3f} {r.baseline_ms:9.3f} "
            f"{r.calls_per_block or '-':>11} {r.ratio:7.3f} {spread:>13s} {target:>7s}  {r.status}"
        )
    loaded = f"\nload: {load} busy process(es) ran beside every case (--load)." if load else ""
    return "\n".join(lines) + "\n\n" + LEGEND + loaded


def write_json(
    results: Sequence[Result], path: str | Path, sweeps: Sequence[dict] = (), load: int = 0
) -> None:
    """Write the results, the sweeps and the machine's description (with the number of
    competing processes, ``load``) as JSON."""
    machine = {"python": platform.python_version(), "platform": platform.platform()}
    doc = {
        "machine": {**machine, "cpus": os.cpu_count(), "load": load},
        "results": [dataclasses.asdict(r) for r in results],
        "sweeps": list(sweeps),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(_finite(doc), indent=2, allow_nan=False).encode())


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity as None (null): a skipped or failed case has no
    time, and strict JSON readers refuse NaN literals."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
