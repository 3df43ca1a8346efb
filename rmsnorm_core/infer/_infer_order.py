"""The probe for where the scale multiplies: ``(h*inv)*g`` or flax's ``h*(inv*g)``.

The two orders are one formula and differ only in float32 rounding, which
no tolerance separates, so this probe reads the rounding itself: a float32 row
whose first element is 1 gives ``inv`` exactly under a neutral gain (both
orders compute ``1*inv*1``); with a random gain, every other element is one of
two single-multiplication roundings that NumPy's float32 reproduces exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from rmsnorm_core.infer._infer_probes import Apply, Layout, neutral_gain, rows_of


def scale_order(
    apply: Apply,
    set_params: Callable[[Mapping[str, np.ndarray]], None],
    layout: Layout,
    offset: float,
    scale: np.ndarray,
) -> str:
    """``"inverse"`` where every output element is ``h*(inv*g)`` rounded and not all
    are ``(h*inv)*g``; else ``"normalized"`` (the default order)."""
    rng = np.random.default_rng(11)
    row = rng.uniform(0.5, 2.0, (1, layout.n)).astype(np.float32)
    row[0, 0] = 1.0
    x = rows_of(layout, row, "float32")
    set_params({"scale": neutral_gain(offset, scale.shape, scale.dtype)})
    inv = layout.rows(apply(x)).reshape(-1)[: layout.n].astype(np.float32)[0]
    w = rng.uniform(0.5, 1.5, scale.shape) - offset
    set_params({"scale": w.astype(scale.dtype)})
    y = layout.rows(apply(x)).reshape(-1)[: layout.n]
    if y.dtype != np.float32:
        return "normalized"  # a rounded output hides the order
    g = (np.float32(offset) + w.astype(scale.dtype).astype(np.float32)).reshape(-1)
    h = row.reshape(-1)
    normalized = (h * inv) * g
    inverse = h * (inv * g)
    if np.array_equal(y, inverse) and not np.array_equal(y, normalized):
        return "inverse"
    return "normalized"
