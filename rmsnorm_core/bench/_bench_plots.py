"""PNG plots of a benchmark run (matplotlib, in the optional ``bench`` extra).

``ratios.png``: one bar per benchmark on a log ratio axis (a ratio of 0.1 and one of
10 are as far from 1), coloured by dtype with a legend, each target a black tick.
``sweep.png``: time against row length at the fixed total size, ours and the peer.
Both are saved with everything inside the image (``bbox_inches="tight"``) and carry
a PNG text tag, so :func:`check_plot_folder` replaces only plots this command wrote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rmsnorm_core._install import install_command
from rmsnorm_core.bench._bench import SWEEP_ELEMENTS, Result
from rmsnorm_core.io._atomic import write_atomic
from rmsnorm_core.spec._errors import RMSNormUsageError

PLOTS = ("ratios.png", "sweep.png")
_TAG = "rmsnorm-bridge bench"  # the PNG's Software text: "this command wrote it"
_COLORS = {"float32": "#4c72b0", "bfloat16": "#dd8452", "float16": "#55a868"}


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot as plt
    except ImportError:
        raise RMSNormUsageError(
            f"--plots needs matplotlib: {install_command(['matplotlib'])}"
        ) from None
    return plt


def check_plot_folder(folder: str) -> Path:
    """``--plots DIR``, before anything runs: matplotlib must import (else refused with
    the install command); DIR is created if missing; a file there named like a plot
    must be one this command wrote (else refused, never replaced)."""
    _pyplot()
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise RMSNormUsageError(f"--plots {folder!r} exists and is not a folder")
    for name in PLOTS:
        target = path / name
        if target.exists() and not _ours(target):
            raise RMSNormUsageError(
                f"--plots {folder!r}: {name} exists and was not written by rmsnorm bench; "
                "choose another folder"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RMSNormUsageError(f"--plots {folder!r}: cannot create it: {err.strerror}") from None
    return path


def _ours(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        head = f.read(4096)  # PNG text chunks come before the image data
    return head.startswith(b"\x89PNG") and _TAG.encode() in head


def _save(fig: Any, path: Path) -> Path:
    def save(tmp: Path) -> None:  # the temporary file's suffix says nothing: format given
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata={"Software": _TAG})

    try:
        write_atomic(path, save)
    finally:  # a failed save closes the figure too
        _pyplot().close(fig)
    return path


def plot_ratios(results: Sequence[Result], path: Path) -> Path:
    """One bar per benchmark: ours / peer on a log axis (1.0 dashed), targets as ticks."""
    plt = _pyplot()
    rows = [r for r in results if not math.isnan(r.ratio)]
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.8))
    seen = set()
    for i, r in enumerate(rows):
        dtype = next((d for d in _COLORS if f"[{d}" in r.name), None)
        label = dtype if dtype not in seen else None
        seen.add(dtype)
        ax.barh(i, r.ratio, color=_COLORS.get(dtype, "#8c8c8c"), label=label or "_")
        if r.target is not None:
            ax.plot([r.target, r.target], [i - 0.4, i + 0.4], color="black", linewidth=1.5)
        if r.status in ("over target", "unsettled"):  # the table's verdict, on the bar
            ax.annotate(r.status, (r.ratio, i), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=6, color="red")  # fmt: skip
    ax.set_xscale("log")
    ax.axvline(1.0, color="gray", linestyle="--", linewidth=1)
    ax.set_yticks(range(len(rows)), [f"{r.name}  vs {r.baseline}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time ratio, ours / peer, log scale (lower is faster; black tick: target;"
                  " red: over target or unsettled, as in the table)")
    ax.set_title("rmsnorm bench: each case against its peer, timed in the same run")
    if seen - {None}:  # a case without a dtype in its name has no colour of its own
        ax.legend(title="dtype", fontsize=8, title_fontsize=8, loc="best")
    return _save(fig, path)


def plot_sweeps(sweeps: Sequence[dict], path: Path) -> Path:
    """Time against row length (fixed total size), ours and the peer, one panel per sweep."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, max(len(sweeps), 1), figsize=(5 * max(len(sweeps), 1), 4.2), squeeze=False
    )
    for ax, sweep in zip(axes[0], sweeps, strict=False):
        ax.plot(sweep["columns"], sweep["ours_ms"], marker="o", label="ours")
        ax.plot(sweep["columns"], sweep["peer_ms"], marker="s", label=sweep["baseline"])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("columns per row (rows x columns fixed)")
        ax.set_ylabel("median time (ms)")
        ax.set_ylim(bottom=0)  # from zero: a gap between the lines reads as its true size
        ax.set_title(f"{sweep['name']} [{sweep['dtype']}]", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(
        f"time against row length, {SWEEP_ELEMENTS:,} elements per call (rows = "
        f"{SWEEP_ELEMENTS:,} / columns); the sweep's own timing, not the table's cases",
        fontsize=10,
    )
    return _save(fig, path)
