"""The tolerance table and the checker: it must fail on wrong answers."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from rmsnorm_core import TOLERANCES, RMSNormSpec, assert_close, compare, reference, tolerance


def test_table_starts_from_torch_testing_defaults():
    assert TOLERANCES["float32"].rtol == 1.3e-6 and TOLERANCES["float32"].atol == 1e-5
    assert TOLERANCES["bfloat16"].rtol == 1.6e-2 and TOLERANCES["float64"].rtol == 1e-7
    # float16 is the one loosened entry (two ulps; see the comment in the table).
    assert TOLERANCES["float16"].rtol == 2e-3


def test_tolerance_accepts_dtype_objects():
    assert tolerance(np.float16) == TOLERANCES["float16"]
    assert tolerance(ml_dtypes.bfloat16) == TOLERANCES["bfloat16"]


def _good():
    x = np.random.default_rng(1).standard_normal((8, 32)).astype(np.float32)
    return x, reference.rms_norm(x, RMSNormSpec())


def test_checker_passes_the_reference_itself():
    _, y = _good()
    assert compare(y, y).passed


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
