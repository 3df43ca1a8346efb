"""The probes behind :func:`rmsnorm_core.infer_spec`: each measures one property.

Every probe feeds the implementation inputs built to expose one rule of the
spec (a constant row shows eps and its placement, a zero scale shows an
offset, a large element beyond the first ``k`` shows a partial statistic,
float16 values of 300 show a half-precision statistic) and reads the answer
off the output. Inputs are laid out as ``(batch..., block)`` and moved into
place by :class:`Layout`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from rmsnorm_core.spec._dtypes import numpy_dtype
from rmsnorm_core.spec._errors import RMSNormError

Apply = Callable[[np.ndarray], np.ndarray]
#: eps values implementations use; a measured eps within 0.5% of one is read as it.
KNOWN_EPS = (1e-5, 1e-6, 1e-8, 1.1920928955078125e-07, 1e-12, 1e-10, 1e-3, 1e-4, 1e-7, 1e-9)


class Layout:
    """Where the normalized block sits in an input: ``axes`` of an input of ``rank``."""

    def __init__(
        self,
        block: tuple[int, ...],
        axes: tuple[int, ...],
        rank: int,
        batch: tuple[int, ...] | None = None,
    ) -> None:
        self.block, self.axes, self.rank = block, axes, rank
        dims = sorted(a % rank for a in axes)
        self.dims = dims
        kept = [d for d in range(rank) if d not in dims]
        self.perm = kept + dims
        self.inverse = list(np.argsort(self.perm))
        self.batch = batch or tuple(2 + (i % 2) for i in range(len(kept)))  # 2, 3, 2, ...

    def with_rows(self, rows: int) -> Layout:
        """The same placement with at least ``rows`` rows (batch ``(rows // 8 + 1, 8)``)."""
        return Layout(self.block, self.axes, self.rank, (-(-rows // 8), 8))

    @property
    def n(self) -> int:
        return math.prod(self.block)

    def place(self, rows: np.ndarray) -> np.ndarray:
        """``rows`` of shape (batch..., n) -> an input with the block at ``axes``."""
        return np.transpose(rows.reshape(self.batch + self.block), self.inverse)

    def rows(self, y: np.ndarray) -> np.ndarray:
        """An output back to (batch..., n)."""
        return np.transpose(np.asarray(y), self.perm).reshape(self.batch + (self.n,))


def candidate_layouts(block: tuple[int, ...]) -> list[Layout]:
    """Trailing axes first (negative, the common case), then every other placement."""
    rank = len(block) + 2
    out = [Layout(block, tuple(range(-len(block), 0)), rank)]
    for dims in itertools.combinations(range(rank), len(block)):
        if list(dims) != list(range(rank - len(block), rank)):
            out.append(Layout(block, dims, rank))
    return out


def rows_of(layout: Layout, rows: np.ndarray, dtype: str) -> np.ndarray:
    """A full batch of copies of ``rows`` (shape (k, n), repeated) in ``dtype``."""
    count = math.prod(layout.batch)
    full = np.resize(rows, (count, layout.n)).reshape(layout.batch + (layout.n,))
    return layout.place(full.astype(numpy_dtype(dtype)))


def blocks_independent(apply: Apply, layout: Layout) -> bool:
    """Perturbing one element changes its own block and no other."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal(layout.batch + (layout.n,)).astype(np.float32)
    y0 = layout.rows(apply(layout.place(base)))
    bumped = base.copy()
    bumped[(0,) * len(layout.batch) + (0,)] += 3.0
    y1 = layout.rows(apply(layout.place(bumped)))
    changed = np.any(y0 != y1, axis=-1)
    first = (0,) * len(layout.batch)
    return bool(changed[first] and changed.sum() == 1 and np.all(y0[first][1:] != y1[first][1:]))


def find_layout(apply: Apply, block: tuple[int, ...]) -> Layout:
    for layout in candidate_layouts(block):
        try:
            if blocks_independent(apply, layout):
                return layout
        except Exception:  # an input of that layout is refused: not this placement
            continue
    raise RMSNormError(
        f"no placement of a normalized block of shape {block} makes the outputs of one block "
        "depend on that block alone: this is not a per-block normalization"
    )


def mean_centred(apply: Apply, layout: Layout) -> bool:
    """A LayerNorm's output does not move when a constant is added to a row, of either sign.

    Both signs: an RMSNorm of one element is about ``sign(x) * g``, so one shift that keeps
    every sign (a row of standard normals plus 5) leaves it unchanged too; ``- 5`` flips it.
    """
    rng = np.random.default_rng(1)
    row = rng.standard_normal((1, layout.n)).astype(np.float32)
    y0 = layout.rows(apply(rows_of(layout, row, "float32")))
    return all(
        np.allclose(y0, layout.rows(apply(rows_of(layout, row + c, "float32"))), 1e-4, 1e-5)
        for c in (5.0, -5.0)
    )


def measure_eps(apply: Apply, layout: Layout) -> tuple[float, str]:
    """``(eps, placement)`` from constant rows ``t``: inside ``y = t / sqrt(t^2 + eps)``,
    outside ``y = t / (t + eps)`` (the gain set to 1 by the caller)."""
    ts = 10.0 ** -np.arange(0.0, 9.0, 0.5)
    rows = np.repeat(ts[:, None], layout.n, axis=1).astype(np.float32)
    count = math.prod(layout.batch)
    outs = []
    for start in range(0, len(ts), count):
        chunk = rows[start : start + count]
        y = layout.rows(apply(rows_of(layout, chunk, "float32"))).reshape(-1, layout.n)
        outs.append(y[: len(chunk), 0])
    y = np.concatenate(outs).astype(np.float64)
    usable = (y > 0.05) & (y < 0.95)
    if not usable.any() and np.all(np.abs(y - 1) < 1e-5):
        return 0.0, "inside"  # no eps down to rows of 3e-9: eps=0 (verified across magnitudes)
    if not usable.any():
        raise RMSNormError("eps could not be measured: no constant row gave 0.05 < y < 0.95")
    t, y = ts[usable], y[usable]
    inside, outside = t**2 * (1 / y**2 - 1), t * (1 / y - 1)
    spread = {
        "inside": float(np.ptp(np.log(inside))) if (inside > 0).all() else math.inf,
        "outside": float(np.ptp(np.log(outside))) if (outside > 0).all() else math.inf,
    }
    placement = min(spread, key=spread.__getitem__)
    estimate = float(np.median(inside if placement == "inside" else outside))
    known = [e for e in KNOWN_EPS if abs(e - estimate) <= 5e-3 * e]
    return (known[0] if known else float(f"{estimate:.3g}")), placement


def prefix_count(apply: Apply, layout: Layout) -> int:
    """How many leading elements of a block enter the statistic (binary search)."""
    n = layout.n

    def enters(j: int) -> bool:
        row = np.ones((2, n), np.float32)
        row[1, j] = 100.0
        y = layout.rows(apply(rows_of(layout, row, "float32"))).reshape(-1, n)
        return bool(abs(y[0, 0] - y[1, 0]) > 1e-3 * abs(y[0, 0])) if j else True

    lo, hi = 1, n  # the statistic uses [0, k): enters(k - 1) and not enters(k)
    while lo < hi:
        mid = (lo + hi) // 2
        if enters(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


def half_statistic(apply: Apply, layout: Layout) -> bool:
    """float16 rows of 300 (300^2 > 65504): a float16 statistic overflows, a float32 one not."""
    row = np.full((1, layout.n), 300.0)
    try:
        y = layout.rows(apply(rows_of(layout, row, "float16"))).astype(np.float64)
    except Exception:
        return False
    return not bool(np.all(np.isfinite(y)) and np.all(np.abs(y) > 0.5))


def neutral_gain(offset: float, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A scale that makes ``g = offset + scale`` equal 1."""
    return np.full(shape, 1.0 - offset).astype(dtype)
