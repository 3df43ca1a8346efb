"""The one tolerance table every parity check uses, and the checker.

Entries start from ``torch.testing.assert_close``'s defaults for each dtype;
an entry that differs says why beside it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rmsnorm_core.spec._dtypes import check_float_dtype, dtype_name


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|``, elementwise.

    Attributes:
        rtol: relative part, a fraction of ``|expected|``.
        atol: absolute part, which covers results near zero.
    """

    rtol: float
    atol: float


TOLERANCES: dict[str, Tolerance] = {
    "float64": Tolerance(rtol=1e-7, atol=1e-7),
    "float32": Tolerance(rtol=1.3e-6, atol=1e-5),
    # torch.testing's bfloat16 entry, 1.6e-2, already spans the two rounding
    # points of cast_order="before_scale" (one bf16 ulp is at most 2^-7).
    "bfloat16": Tolerance(rtol=1.6e-2, atol=1e-5),
    # Loosened from torch.testing's 1e-3: one float16 ulp is up to 2^-10
    # (9.8e-4) relative, and cast_order="before_scale" rounds twice (the
    # normalized value, then the product), so a backend whose float32 rsqrt
    # differs from float64's in the last bit can land two ulps away.
    "float16": Tolerance(rtol=2e-3, atol=1e-5),
}
"""The one tolerance table: the :class:`Tolerance` every backend's results in a dtype
are held to against the float64 reference (see :func:`compare`)."""


def tolerance(dtype: Any) -> Tolerance:
    """Return the table entry for ``dtype`` (a name or any dtype object)."""
    return TOLERANCES[check_float_dtype("dtype", dtype_name(dtype))]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The result of comparing one array with the reference.

    Attributes:
        passed: every element within tolerance, NaNs and infinities in the
            same places with the same signs, and the shapes equal.
        max_abs: largest absolute error over the finite elements.
        max_rel: largest ``|actual - expected| / |expected|`` over the finite,
            non-zero expected elements.
        mismatched: how many elements failed.
        reason: why it failed, empty when it passed; a failure names its worst
            element (index, value, expected value).
        ratio: the largest ``|actual - expected| / (atol + rtol * |expected|)``
            over the finite elements (at most 1 where it passed); ``inf`` where a
            NaN or an infinity is misplaced or the shapes differ.
    """

    passed: bool
    max_abs: float
    max_rel: float
    mismatched: int
    reason: str = ""
    ratio: float = 0.0


def compare(
    actual: Any, expected: Any, dtype: Any | None = None, *, gradient: bool = False
) -> Comparison:
    """Compare ``actual`` with ``expected`` under the tolerance for ``dtype``.

    Args:
        actual: the backend's array (any array-like NumPy can read).
        expected: the reference array.
        dtype: the key into :data:`TOLERANCES`; defaults to ``actual``'s dtype.
            For forward outputs pass ``DtypePlan.precision``: a value rounded
            to bfloat16 before the scale carries bfloat16 error even when the
            output is float32.
        gradient: compare a gradient. ``dx = inv * (gy - nh * mean(gy * nh))``
            subtracts two terms of the size of ``inv * |gy|``, so an element's
            rounding error is bounded relative to the size of the tensor, not
            to the (possibly cancelled) element: gradients use
            ``atol = max(atol, rtol * max|expected|)``.
    """
    act = np.asarray(actual)
    exp = np.asarray(expected)
    tol = tolerance(act.dtype if dtype is None else dtype)
    if gradient and exp.size:
        finite = exp[np.isfinite(exp)]
        peak = float(np.abs(finite).max()) if finite.size else 0.0
        tol = Tolerance(tol.rtol, max(tol.atol, tol.rtol * peak))
    if act.shape != exp.shape:
        return Comparison(
            False,
            float("inf"),
            float("inf"),
            max(act.size, exp.size),
            f"shape {act.shape} != expected {exp.shape}",
            float("inf"),
        )
    a = act.astype(np.float64)
    e = exp.astype(np.float64)
    finite = np.isfinite(e)
    same_special = np.where(np.isnan(e), np.isnan(a), a == e)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is handled below
        diff = np.abs(a - e)
        within = diff <= tol.atol + tol.rtol * np.abs(e)
    ok = np.where(finite, within & np.isfinite(a), same_special)
    mismatched = int(ok.size - np.count_nonzero(ok))
    both = finite & np.isfinite(a)
    max_abs = float(diff[both].max()) if both.any() else 0.0
    nonzero = both & (e != 0)
    max_rel = float((diff[nonzero] / np.abs(e[nonzero])).max()) if nonzero.any() else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.where(both, diff / (tol.atol + tol.rtol * np.abs(e)), 0.0)
    excess = np.where(ok | both, excess, np.inf)  # a misplaced NaN or inf is the worst
    ratio = float(excess.max()) if excess.size else 0.0
    reason = ""
    if mismatched:
        worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
        reason = (
            f"{mismatched} of {ok.size} elements outside rtol={tol.rtol}, "
            f"atol={tol.atol} (max abs {max_abs:.3g}, max rel {max_rel:.3g}); worst at "
            f"{list(map(int, worst))}: {float(a[worst])!r} where {float(e[worst])!r} is expected"
        )
    return Comparison(mismatched == 0, max_abs, max_rel, mismatched, reason, ratio)


ROUNDING_AGREEMENT = 0.98
"""Least fraction of half-precision results that must equal the reference bit for
bit. No tolerance can see a cast-order slip (it moves a result by one ulp), but it
changes about a quarter of all elements: a backend rounding at the spec's points
agrees on >= 99.9% (float32 arithmetic order flips the rest), one rounding elsewhere
on about 74% (both measured with torch)."""


def rounding_agreement(actual: Any, expected: Any) -> float:
    """Fraction of elements of ``actual`` that equal ``expected`` exactly (NaN == NaN)."""
    a = np.asarray(actual).astype(np.float64)
    e = np.asarray(expected).astype(np.float64)
    if a.shape != e.shape:
        return 0.0
    if not a.size:
        return 1.0
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    return float(np.count_nonzero(same)) / same.size


def assert_close(
    actual: Any,
    expected: Any,
    dtype: Any | None = None,
    *,
    gradient: bool = False,
    name: str = "",
) -> None:
    """Raise AssertionError unless :func:`compare` passes.

    Args:
        actual: as in :func:`compare`.
        expected: as in :func:`compare`.
        dtype: as in :func:`compare`.
        gradient: as in :func:`compare`.
        name: what is compared, for the message (e.g. ``"torch bf16 dx"``).
    """
    result = compare(actual, expected, dtype, gradient=gradient)
    if not result.passed:
        label = f"{name}: " if name else ""
        raise AssertionError(f"{label}{result.reason}")


__all__ = [
    "ROUNDING_AGREEMENT",
    "TOLERANCES",
    "Comparison",
    "Tolerance",
    "assert_close",
    "compare",
    "rounding_agreement",
    "tolerance",
]
