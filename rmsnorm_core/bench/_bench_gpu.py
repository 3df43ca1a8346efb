"""``rmsnorm bench --gpu``: achieved memory bandwidth on an accelerator.

Each backend contributes :class:`GpuCase` s (``Backend.gpu_benchmarks``): one
contender (ours, or a peer: ``torch.nn.RMSNorm``, its ``torch.compile`` d
form, Liger-Kernel's ``LigerRMSNorm``, ``flax.linen.RMSNorm`` under jit) at
one shape, dtype and direction, with the bytes it must move at least (read
``x``, write ``y``; forward+backward also reads ``x`` and ``dy`` again and
writes ``dx``). Bandwidth is those bytes over the median time; the fraction
is of the device's nominal peak (a table of known devices, or
``--peak-gbps``), and each contender's ratio is against the peer of its group
measured in the same run. ``--smoke`` runs every case on a tiny shape (on CPU
under the Triton interpreter: it proves the harness, never a speed).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rmsnorm_core.bench._bench import missing
from rmsnorm_core.io._atomic import write_atomic

#: Full-size shapes (rows, columns) of the issue; ``--smoke`` uses SMOKE_SHAPES.
SHAPES: tuple[tuple[int, int], ...] = ((8192, 8192), (32768, 4096))
SMOKE_SHAPES: tuple[tuple[int, int], ...] = ((4, 256),)
DTYPES: tuple[str, ...] = ("bfloat16", "float16", "float32")
_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
#: Nominal peak memory bandwidth, GB/s, by a substring of the device name.
PEAK_GBPS: tuple[tuple[str, float], ...] = (
    ("H200", 4800.0), ("H100 NVL", 3900.0), ("H100 PCIe", 2000.0), ("H100", 3350.0),
    ("A100-SXM4-80GB", 2039.0), ("A100 80GB PCIe", 1935.0), ("A100", 1555.0),
    ("L40S", 864.0), ("A10G", 600.0), ("L4", 300.0), ("RTX 4090", 1008.0),
)  # fmt: skip


class Unavailable(Exception):  # noqa: N818 (a signal: the case cannot run here)
    """Raised by a case's setup where it cannot run (no device): reported as skipped."""


@dataclasses.dataclass(frozen=True)
class Timed:
    """What a GPU case's setup returns.

    Attributes:
        run: one call of the contender.
        sync: waits until the device has finished the calls queued so far.
        device: the device's name, as the report shows it.
    """

    run: Callable[[], object]
    sync: Callable[[], None]
    device: str


@dataclasses.dataclass(frozen=True)
class GpuCase:
    """One contender in one group (same shape, dtype, direction and framework).

    Attributes:
        group: e.g. ``"torch fwd [8192x8192 bfloat16]"``.
        contender: e.g. ``"ours (eager)"``.
        nbytes: bytes it must move at least.
        setup: builds the inputs; returns a :class:`Timed`.
        peer: the contender the group's ratios are taken against.
        requires: modules that must import, else the case is reported skipped.
    """

    group: str
    contender: str
    nbytes: int
    setup: Callable[[], Timed]
    peer: bool = False
    requires: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Group:
    """One shape, dtype and direction of one framework, and the bytes it must move."""

    name: str
    rows: int
    cols: int
    dtype: str
    backward: bool
    nbytes: int


def groups(framework: str, shapes: Sequence[tuple[int, int]], dtypes: Sequence[str]) -> list[Group]:
    """Every shape x dtype x (fwd, fwd+bwd) of ``framework``: forward reads ``x`` and
    writes ``y`` (2 passes over the tensor); forward+backward adds reading ``x`` and
    ``dy`` and writing ``dx`` (5). Parameters and per-row statistics are not counted."""
    out = []
    for rows, cols in shapes:
        for dtype in dtypes:
            for backward in (False, True):
                nbytes = rows * cols * _BYTES[dtype] * (5 if backward else 2)
                name = f"{framework} {'fwd+bwd' if backward else 'fwd'} [{rows}x{cols} {dtype}]"
                out.append(Group(name, rows, cols, dtype, backward, nbytes))
    return out


def peak_gbps(device: str) -> float | None:
    """The nominal peak of a known device name, else None."""
    for key, gbps in PEAK_GBPS:
        if key in device:
            return gbps
    return None


def _median_ms(timed: Timed, warmup: int, repeat: int, inner: int) -> float:
    for _ in range(warmup):
        timed.run()
    timed.sync()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            timed.run()
        timed.sync()
        samples.append((time.perf_counter() - start) * 1e3 / inner)
    return statistics.median(samples)


def run_cases(
    cases: Sequence[GpuCase], *, warmup: int, repeat: int, inner: int, peak: float | None
) -> list[dict[str, Any]]:
    """Time every case; a missing module or a crash is a row that says so."""
    rows = []
    for case in cases:
        row: dict[str, Any] = {"group": case.group, "contender": case.contender,
                               "peer": case.peer, "bytes": case.nbytes}  # fmt: skip
        absent = missing(case.requires)
        try:
            if absent is not None:
                raise ImportError(f"{absent} is not installed")
            timed = case.setup()
            ms = _median_ms(timed, warmup, repeat, inner)
        except (ImportError, Unavailable) as err:
            row["status"] = f"skipped: {err}"
            rows.append(row)
            continue
        except Exception as err:  # reported, never hidden
            row["status"] = f"failed: {type(err).__name__}: {str(err)[:160]}"
            rows.append(row)
            continue
        gbps = case.nbytes / ms / 1e6
        device_peak = peak or peak_gbps(timed.device)
        row.update(status="ok", device=timed.device, ms=ms, gbps=gbps,
                   peak_fraction=gbps / device_peak if device_peak else None)  # fmt: skip
        rows.append(row)
    return add_ratios(rows)


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Set each row's ``ratio_vs_peer``: its time over its group's peer's (None if absent)."""
    for row in rows:
        peers = [r for r in rows if r["group"] == row["group"] and r["peer"] and "ms" in r]
        row["ratio_vs_peer"] = row["ms"] / peers[0]["ms"] if peers and "ms" in row else None
    return rows


SMOKE_NOTE = (
    "smoke run: a tiny shape (on CPU, Triton's interpreter): these rows prove the harness end\n"
    "to end and measure no speed; their times and ratios are not figures of any device."
)


def format_rows(rows: Sequence[dict[str, Any]], smoke: bool = False) -> str:
    """A plain-text table: group, contender, ms, GB/s, fraction of peak, ratio; a smoke
    run ends with :data:`SMOKE_NOTE`."""
    head = f"{'group':34s} {'contender':30s} {'ms':>9s} {'GB/s':>8s} {'peak':>6s} {'ratio':>7s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if "ms" not in r:
            lines.append(f"{r['group']:34s} {r['contender']:30s} {r['status']}")
            continue
        frac = f"{r['peak_fraction']:.0%}" if r["peak_fraction"] is not None else "-"
        ratio = f"{r['ratio_vs_peer']:.3f}" if r["ratio_vs_peer"] is not None else "-"
        lines.append(f"{r['group']:34s} {r['contender']:30s} {r['ms']:9.4f} "
                     f"{r['gbps']:8.1f} {frac:>6s} {ratio:>7s}")  # fmt: skip
    return "\n".join(lines) + ("\n\n" + SMOKE_NOTE if smoke else "")


def default_path(rows: Sequence[dict[str, Any]], folder: str | Path) -> Path:
    """``<folder>/gpu-<device>.json``, the device name as a file-name slug."""
    device = next((r["device"] for r in rows if r.get("device")), "unknown")
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-") or "unknown"
    return Path(folder) / f"gpu-{slug}.json"


def write(rows: Sequence[dict[str, Any]], path: str | Path, smoke: bool) -> Path:
    """Write the rows, the machine and whether this was a smoke run, as JSON."""
    doc = {"machine": {"python": platform.python_version(), "platform": platform.platform()},
           "smoke": smoke, "rows": list(rows)}  # fmt: skip
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(doc, indent=2, allow_nan=True).encode())
    return Path(path)
