"""The verification a candidate spec passes before :func:`infer_spec` reports it.

A probe reads each rule off inputs built for it; verification then runs the
implementation on the inputs a user will feed it and compares every output
with the float64 reference under the tolerance table (and, where the last
rounding is to a half dtype, the table's bit-for-bit share). A spec is reported
only if it holds for every run, in every dtype it claims:

- Gaussian rows of |x| ~ 3 (where cast orders and output dtypes tell apart);
- float32 rows whose rms is 3x, 1x and 1/3x the eps scale, each with a zero row
  (a clamp ``max(ms, eps)`` or an eps elsewhere departs there);
- rows with one dominant element (a clamp of the normalized value, or of one
  element, departs there: a Gaussian row never reaches ``sqrt(n)``);
- tiny and huge rows within each dtype's range (an input clamp or a flush to
  zero departs there), scaled by powers of two, so that only eps and the range
  differ from the |x| ~ 3 rows;
- calls of 1, 3, 9, 64 and 513 rows (a kernel that switches strategy with the
  batch size departs on one side of its threshold), each repeated until the
  bit-for-bit share has enough elements.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np

from rmsnorm_core.infer._infer_probes import Apply, Layout
from rmsnorm_core.parity._problems import Problem, check_forward
from rmsnorm_core.spec._dtypes import numpy_dtype
from rmsnorm_core.spec._spec import RMSNormSpec

VERIFIED_DTYPES = ("float32", "bfloat16", "float16")
"""The input dtypes a verified spec is claimed (and checked) for."""

BATCH_ROWS = (1, 3, 9, 64, 513)
"""Rows per call in the batch-size runs: one row, and sizes on both sides of the
thresholds kernels use (8 rows, a vector width, a tile of 512)."""

BATCH_ELEMENT_LIMIT = 1 << 20
"""A batch-size run of more rows than this many elements allows is left out (a block of
a million elements is probed at one row); one row is always run."""

MIN_ELEMENTS = 1024
"""The least elements a run compares: the bit-for-bit share needs several hundred to
tell a cast-order slip (about a quarter of the elements) from arithmetic-order noise."""

MAGNITUDES = {"float32": (2.0**-40, 2.0**40), "bfloat16": (2.0**-40, 2.0**40)}
MAGNITUDES["float16"] = (2.0**-6, 2.0**12)
"""``(tiny, huge)`` row scales per dtype: inside its normal range with room for a
4-sigma element (float16's largest is 65504, its smallest normal 2**-14), and, for
a float32 statistic, a sum of squares of a million elements far below float32's
largest."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One verification run: ``calls`` calls of ``rows`` rows each.

    Attributes:
        dtype: the input dtype.
        kind: ``"gaussian"``, ``"eps"`` (with a zero row), ``"outlier"``, ``"tiny"``
            or ``"huge"``.
        magnitude: the rows' scale (the dominant element's, for outliers).
        rows: rows per call.
        calls: how many calls (fresh rows in each).
        batch: whether this run is one of the batch-size runs.
    """

    dtype: str
    kind: str
    magnitude: float
    rows: int
    calls: int = 1
    batch: bool = False

    def describe(self) -> str:
        """The run in words, for the reason a spec fails it."""
        if self.batch:
            return f"{self.dtype} in calls of {self.rows} row{'s' * (self.rows != 1)}"
        if self.kind == "eps":
            return f"{self.dtype} at rms ~ {self.magnitude:.2g}, where eps matters"
        if self.kind == "outlier":
            return f"{self.dtype} rows with one dominant element"
        if self.kind in ("tiny", "huge"):
            return f"{self.dtype} {self.kind} rows (|x| ~ {self.magnitude:.2g})"
        return self.dtype


def runs(spec: RMSNormSpec, n: int) -> list[Run]:
    """Every run ``spec`` must pass for a block of ``n`` elements, cheapest to fail first.

    The single-call runs use the first batch size with enough elements for the
    bit-for-bit share, so that they add no input shape of their own (a JAX
    implementation compiles each new shape).
    """
    sizes = [b for b in BATCH_ROWS if b == 1 or b * n <= BATCH_ELEMENT_LIMIT]
    main = next((b for b in sizes if b * n >= 4096), -(-4096 // n))
    unit = spec.eps if spec.eps_placement == "outside" else math.sqrt(spec.eps)
    out = [Run(dtype, "gaussian", 3.0, main) for dtype in VERIFIED_DTYPES]
    out += [Run("float32", "eps", unit * k, main) for k in (3.0, 1.0, 1.0 / 3.0)]
    out += [Run(dtype, "outlier", 3.0, main) for dtype in VERIFIED_DTYPES]
    for dtype in VERIFIED_DTYPES:
        tiny, huge = MAGNITUDES[dtype]
        out += [Run(dtype, "tiny", tiny, main), Run(dtype, "huge", huge, main)]
    for dtype in VERIFIED_DTYPES:
        for b in sizes:
            if b != main:
                out.append(Run(dtype, "gaussian", 3.0, b, -(-MIN_ELEMENTS // (b * n)), True))
    return out


def sample_rows(run: Run, n: int, rng: np.random.Generator) -> np.ndarray:
    """The run's rows, ``(calls, rows, n)`` in float64."""
    shape = (run.calls, run.rows, n)
    rows = np.clip(rng.standard_normal(shape), -4.0, 4.0)
    if run.kind == "outlier":
        rows *= 2.0**-10
        flat = rows.reshape(-1, n)
        where = (np.arange(len(flat)) * 7) % n  # the dominant element moves along the row
        flat[np.arange(len(flat)), where] = rng.choice((-1.0, 1.0), len(flat))
    if run.kind == "eps":
        rows[0, 0] = 0.0  # a zero row: zeros, whatever eps is
    return rows * run.magnitude


def verify(
    apply: Apply,
    set_params: Callable[[Mapping[str, np.ndarray]], None],
    spec: RMSNormSpec,
    layout: Layout,
    saved: Mapping[str, np.ndarray],
) -> str | None:
    """None if ``spec`` reproduces the implementation ``apply`` in every run of
    :func:`runs`, else why not.

    The parameters (``saved`` gives their shapes and dtypes) are set through
    ``set_params`` to random values, around 1 for the scale and near 0 for the bias,
    for the runs; the caller restores them.
    """
    rng = np.random.default_rng(7)
    params = {}
    for name, value in saved.items():
        low, high = (0.5, 1.5) if name == "scale" else (-0.2, 0.2)
        fresh = rng.uniform(low, high, value.shape) - (spec.scale_offset if name == "scale" else 0)
        params[name] = fresh.astype(value.dtype)
    set_params(params)
    for run in runs(spec, layout.n):
        reason = _check(apply, spec, layout, params, run, sample_rows(run, layout.n, rng))
        if reason is not None:
            return f"{run.describe()}: {reason}"
    return None


def _check(
    apply: Apply,
    spec: RMSNormSpec,
    layout: Layout,
    params: Mapping[str, np.ndarray],
    run: Run,
    rows: np.ndarray,
) -> str | None:
    """Why ``spec`` fails ``run`` on ``rows``, or None: the calls' outputs, joined along
    the first batch axis, against the reference on the joined input."""
    placed = Layout(layout.block, layout.axes, layout.rank, (run.calls, run.rows))
    x = placed.place(rows.astype(numpy_dtype(run.dtype)))
    first = placed.perm[0]  # the input axis the calls are stacked along
    parts = []
    for i in range(run.calls):
        piece = np.take(x, [i], axis=first)
        try:
            out = np.asarray(apply(piece))
        except Exception as err:
            return f"input refused ({type(err).__name__})"
        if out.shape != piece.shape:
            return f"output shape {out.shape} != input shape {piece.shape}"
        parts.append(out)
    y = np.concatenate(parts, axis=first)
    problem = Problem(spec, x, params.get("scale"), params.get("bias"), np.zeros_like(x))
    result = check_forward(problem, y)
    return None if result.passed else result.reason
