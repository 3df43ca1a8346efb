"""Registry, timing and reporting for ratio benchmarks.

A benchmark times a candidate against a baseline in the same process: both are
warmed up, then run alternately ``repeat`` times, and the ratio of their
medians is reported. Absolute times drift on shared machines; ratios hold.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

Setup = Callable[[], tuple[Callable[[], object], Callable[[], object]]]


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """One registered case: ``setup()`` returns ``(candidate, baseline)`` callables."""

    name: str
    baseline: str
    setup: Setup
    target: float | None = None
    requires: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Result:
    """Medians in milliseconds and their ratio (candidate / baseline)."""

    name: str
    baseline: str
    candidate_ms: float
    baseline_ms: float
    ratio: float
    target: float | None
    status: str  # "ok", "over target", "skipped: <why>"


REGISTRY: dict[str, Benchmark] = {}


def register(
    name: str, *, baseline: str, target: float | None = None, requires: Sequence[str] = ()
) -> Callable[[Setup], Setup]:
    """Register ``setup`` under ``name``; ``target`` is the ratio to stay at or under."""

    def decorator(setup: Setup) -> Setup:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, baseline, setup, target, tuple(requires))
        return setup

    return decorator


def discover(modules: Iterable[str] | None = None) -> None:
    """Import ``benchmarks/bench_*.py`` so that they register their cases."""
    names = (
        modules
        if modules is not None
        else sorted(f"benchmarks.{p.stem}" for p in Path(__file__).parent.glob("bench_*.py"))
    )
    for module in names:
        importlib.import_module(module)


def _time_ms(fn: Callable[[], object], sync: Callable[[object], None]) -> float:
    start = time.perf_counter()
    sync(fn())
    return (time.perf_counter() - start) * 1e3


def _block(result: object) -> None:
    """Wait for asynchronous results (JAX arrays) before the clock stops."""
    leaves = result if isinstance(result, (tuple, list)) else (result,)
    for leaf in leaves:
        ready = getattr(leaf, "block_until_ready", None)
        if ready is not None:
            ready()


def run_one(bench: Benchmark, *, warmup: int = 3, repeat: int = 15) -> Result:
    """Time one benchmark; a missing framework gives a skipped result."""
    for module in bench.requires:
        try:
            importlib.import_module(module)
        except ImportError:
            return Result(
                bench.name,
                bench.baseline,
                float("nan"),
                float("nan"),
                float("nan"),
                bench.target,
                f"skipped: {module} is not installed",
            )
    candidate, baseline = bench.setup()
    for _ in range(warmup):
        _block(candidate())
        _block(baseline())
    cand_times, base_times = [], []
    for _ in range(repeat):  # alternate so that drift hits both sides alike
        cand_times.append(_time_ms(candidate, _block))
        base_times.append(_time_ms(baseline, _block))
    cand, base = statistics.median(cand_times), statistics.median(base_times)
    ratio = cand / base
    status = "ok" if bench.target is None or ratio <= bench.target else "over target"
    return Result(bench.name, bench.baseline, cand, base, ratio, bench.target, status)


def format_table(results: Sequence[Result]) -> str:
    """Return a plain-text table of the results."""
    head = (
        f"{'benchmark':44s} {'baseline':34s} {'ours ms':>9s} {'peer ms':>9s} "
        f"{'ratio':>7s} {'target':>7s}  status"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        target = f"{r.target:.2f}" if r.target is not None else "-"
        lines.append(
            f"{r.name:44s} {r.baseline:34s} {r.candidate_ms:9.3f} {r.baseline_ms:9.3f} "
            f"{r.ratio:7.3f} {target:>7s}  {r.status}"
        )
    return "\n".join(lines)


def write_json(results: Sequence[Result], path: str | Path) -> None:
    """Write the results and the machine's description as JSON."""
    doc = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "results": [dataclasses.asdict(r) for r in results],
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2, allow_nan=True))
