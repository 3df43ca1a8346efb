"""The tolerance table and the checker: it must fail on wrong answers."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from rmsnorm_core import TOLERANCES, RMSNormSpec, assert_close, compare, reference, tolerance


def test_tolerance_accepts_dtype_objects():
    assert tolerance(np.float16) == TOLERANCES["float16"]
    assert tolerance(ml_dtypes.bfloat16) == TOLERANCES["bfloat16"]


def _good():
    x = np.random.default_rng(1).standard_normal((8, 32)).astype(np.float32)
    return x, reference.rms_norm(x, RMSNormSpec())


def test_checker_passes_an_independent_float32_computation():
    """The formula in float32 NumPy (another rounding of every step) is within the table
    of the float64 reference; the checker must not demand bit equality there."""
    x, y = _good()
    ms = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    independent = (x / np.sqrt(ms + np.float32(1e-6))).astype(np.float32)
    assert not np.array_equal(independent, y)  # a real comparison, not y with itself
    assert compare(independent, y).passed


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda y: y * (1 + 1e-4),  # a small relative error
        lambda y: y + np.float32(1e-3),  # an offset
        lambda y: np.where(np.arange(y.size).reshape(y.shape) == 7, np.nan, y),  # one NaN
        lambda y: y[:, ::-1],  # a permutation
        lambda y: y[:4],  # a wrong shape
        lambda y: np.zeros_like(y),  # all zeros
    ],
    ids=["relative-1e-4", "offset-1e-3", "one-nan", "reversed", "shape", "zeros"],
)
def test_checker_fails_on_a_wrong_answer(corrupt):
    _, y = _good()
    bad = np.asarray(corrupt(y), dtype=np.float32)
    assert not compare(bad, y).passed
    with pytest.raises(AssertionError, match=r"torch f32: "):
        assert_close(bad, y, name="torch f32")


def test_checker_fails_on_a_wrong_spec():
    # A backend that put eps outside the root when the spec says inside.
    x, y = _good()
    wrong = reference.rms_norm(x, RMSNormSpec(eps=1e-2, eps_placement="outside"))
    expected = reference.rms_norm(x, RMSNormSpec(eps=1e-2))
    assert not compare(wrong, expected).passed


def test_checker_matches_nan_and_inf_positions():
    exp = np.array([1.0, np.nan, np.inf, -np.inf])
    assert compare(exp.copy(), exp, "float64").passed
    assert not compare(np.array([1.0, np.nan, -np.inf, -np.inf]), exp, "float64").passed
    assert not compare(np.array([1.0, 0.0, np.inf, -np.inf]), exp, "float64").passed


def test_checker_reports_errors():
    result = compare(np.array([1.0, 2.5]), np.array([1.0, 2.0]), "float32")
    assert not result.passed and result.mismatched == 1
    assert result.max_abs == pytest.approx(0.5) and result.max_rel == pytest.approx(0.25)
    assert "1 of 2 elements outside rtol=1.3e-06" in result.reason


def test_one_ulp_in_bf16_passes_and_four_fail():
    e = np.array([1.5], dtype=ml_dtypes.bfloat16)
    one = np.array([1.5 + 2**-7], dtype=ml_dtypes.bfloat16)
    four = np.array([1.5 + 4 * 2**-7], dtype=ml_dtypes.bfloat16)
    assert compare(one, e).passed
    assert not compare(four, e).passed
