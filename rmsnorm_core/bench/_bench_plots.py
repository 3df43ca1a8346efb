"""PNG plots of a benchmark run (matplotlib, in the optional ``bench`` extra)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmsnorm_core.bench._bench import Result
from rmsnorm_core.spec._errors import RMSNormUsageError


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise RMSNormUsageError(
            "--plots needs matplotlib: pip install 'rmsnorm-bridge[bench]'"
        ) from None
    return plt


def plot_ratios(results: Sequence[Result], path: Path) -> Path:
    """One bar per benchmark: ours / peer (1.0 dashed), each bar's target as a tick."""
    plt = _pyplot()
    rows = [r for r in results if not math.isnan(r.ratio)]
    fig, ax = plt.subplots(figsize=(10, 0.32 * len(rows) + 1.5))
    colors = {"float32": "#4c72b0", "bfloat16": "#dd8452", "float16": "#55a868"}
    for i, r in enumerate(rows):
        dtype = next((d for d in colors if f"[{d}" in r.name), None)
        ax.barh(i, r.ratio, color=colors.get(dtype, "#8c8c8c"))
        if r.target is not None:
            ax.plot([r.target, r.target], [i - 0.4, i + 0.4], color="black", linewidth=1.5)
    ax.axvline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), [f"{r.name}  vs {r.baseline}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio, ours / peer (lower is faster; black tick: target)")
    ax.set_title("rmsnorm bench: ratios against the peer timed in the same run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_sweeps(sweeps: Sequence[dict], path: Path) -> Path:
    """Time against row length (fixed total size), ours and the peer, one panel per sweep."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, max(len(sweeps), 1), figsize=(5 * max(len(sweeps), 1), 4), squeeze=False
    )
    for ax, sweep in zip(axes[0], sweeps, strict=False):
        ax.plot(sweep["columns"], sweep["ours_ms"], marker="o", label="ours")
        ax.plot(sweep["columns"], sweep["peer_ms"], marker="s", label=sweep["baseline"])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("columns per row (rows x columns fixed)")
        ax.set_ylabel("median time (ms)")
        ax.set_title(f"{sweep['name']} [{sweep['dtype']}]", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
