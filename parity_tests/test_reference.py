"""The float64 oracle against closed forms worked out by hand."""

from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError, reference

BF16 = ml_dtypes.bfloat16


def bf16_round(value: float) -> float:
    """Round to bfloat16 (8 significant bits, ties to even), written independently."""
    if value == 0:
        return 0.0
    frac = Fraction(value)
    exponent = math.frexp(abs(value))[1] - 8
    scaled = frac / (Fraction(2) ** exponent)
    rounded = round(scaled)  # Fraction rounding is ties-to-even
    return float(rounded * Fraction(2) ** exponent)


def test_bf16_helper_agrees_with_ml_dtypes_on_float32_values():
    for v in np.linspace(-3.7, 5.1, 501, dtype=np.float32):
        assert bf16_round(float(v)) == float(np.float32(v).astype(BF16))


@pytest.mark.parametrize("c", [0.5, -3.0, 1e-3, 250.0], ids=["half", "neg3", "small", "large"])
def test_constant_rows(c):
    spec = RMSNormSpec(eps=1e-6)
    x = np.full((3, 16), c, dtype=np.float64)
    y = reference.rms_norm(x, spec)
    np.testing.assert_allclose(y, c / math.sqrt(c * c + 1e-6), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16], ids=["f32", "f16", "bf16"])
def test_all_zero_row_gives_zeros_and_finite_gradient(dtype):
    spec = RMSNormSpec()
    x = np.zeros((2, 8), dtype=dtype)
    x[1] = np.arange(8)
    y = reference.rms_norm(x, spec)
    assert np.all(y[0] == 0)
    dy = np.ones((2, 8))
    dx, dscale, _ = reference.rms_norm_vjp(x, dy, spec)
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(dscale))
    np.testing.assert_allclose(dx[0], 1 / math.sqrt(1e-6), rtol=1e-12)


@pytest.mark.parametrize("placement", ["inside", "outside"])
def test_all_zero_row_eps_outside_gradient_is_finite(placement):
    spec = RMSNormSpec(eps_placement=placement, eps=1e-8)
    dx, _, _ = reference.rms_norm_vjp(np.zeros((1, 4)), np.ones((1, 4)), spec)
    assert np.all(np.isfinite(dx))


@pytest.mark.parametrize("magnitude", [300.0, 60000.0, 65504.0], ids=["300", "60000", "fp16-max"])
def test_fp16_large_values_are_upcast(magnitude):
    # (magnitude)^2 overflows float16 (max 65504): a reference that squared in
    # float16 would return 0 or NaN here. Alternating signs: the rms is magnitude.
    x = np.array([[magnitude, -magnitude] * 4], dtype=np.float16)
    y = reference.rms_norm(x, RMSNormSpec())
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, np.array([[1.0, -1.0] * 4], dtype=np.float16))


def test_fp16_mixed_row_with_large_values():
    x = np.array([[3e4, 4e4, 0.0, 0.0]], dtype=np.float16)
    rms = math.sqrt((float(np.float16(3e4)) ** 2 + float(np.float16(4e4)) ** 2) / 4)
    expected = np.array([[float(np.float16(3e4)) / rms, float(np.float16(4e4)) / rms, 0, 0]])
    y = reference.rms_norm(x, RMSNormSpec())
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=1e-3)


def test_compute_input_reproduces_fp16_overflow():
    # Naive float16 code squares in float16: 300^2 = 90000 > 65504 -> inf -> y = 0.
    x = np.array([[300.0, -300.0]], dtype=np.float16)
    y = reference.rms_norm(x, RMSNormSpec(compute_dtype="input"))
    np.testing.assert_array_equal(y, np.zeros((1, 2), dtype=np.float16))


def test_partial_uses_the_first_k_elements_and_k_as_divisor():
    x = np.array([[3.0, 4.0, 100.0, -100.0]])
    y = reference.rms_norm(x, RMSNormSpec(partial=0.5, eps=1e-6))
    np.testing.assert_allclose(y, x / math.sqrt(12.5 + 1e-6), rtol=1e-15)


def test_partial_over_several_axes_flattens_in_c_order():
    x = np.array([[[3.0, 4.0], [50.0, 60.0]]])  # block (2, 2) flattened: 3, 4, 50, 60
    y = reference.rms_norm(x, RMSNormSpec(axes=(1, 2), partial=0.5, eps=1e-6))
    np.testing.assert_allclose(y, x / math.sqrt(12.5 + 1e-6), rtol=1e-15)


def test_eps_outside_adds_eps_to_the_rms():
    x = np.array([[3.0, 4.0]])
    y = reference.rms_norm(x, RMSNormSpec(eps=0.5, eps_placement="outside"))
    np.testing.assert_allclose(y, x / (math.sqrt(12.5) + 0.5), rtol=1e-15)


def test_offset_scale_of_zero_is_identity_gain():
    x = np.array([[3.0, 4.0]])
    spec = RMSNormSpec(scale_offset=1.0, eps=1e-6)
    y = reference.rms_norm(x, spec, scale=np.zeros(2, dtype=np.float32))
    np.testing.assert_allclose(y, x / math.sqrt(12.5 + 1e-6), rtol=1e-15)
    y2 = reference.rms_norm(x, spec, scale=np.array([0.5, -2.0], dtype=np.float32))
    np.testing.assert_allclose(y2, x * np.array([1.5, -1.0]) / math.sqrt(12.5 + 1e-6), rtol=1e-15)


def test_offset_is_added_in_float32_not_in_half():
    # bf16 scale 2^-9 plus 1.0 is 1 + 2^-9 in float32; in bfloat16 it would be 1.0.
    spec = RMSNormSpec(scale_offset=1.0, eps=1e-30, param_dtype="bfloat16")
    x = np.array([[1.0, 1.0]])
    y = reference.rms_norm(x, spec, scale=np.full(2, 2.0**-9, dtype=BF16))
    np.testing.assert_allclose(y, 1 + 2.0**-9, rtol=1e-12)


def test_bias_is_added():
    x = np.array([[3.0, 4.0]])
    spec = RMSNormSpec(use_bias=True, eps=1e-6)
    y = reference.rms_norm(x, spec, scale=np.array([2.0, 2.0]), bias=np.array([1.0, -1.0]))
    np.testing.assert_allclose(y, 2 * x / math.sqrt(12.5 + 1e-6) + [1.0, -1.0], rtol=1e-15)


def test_cast_orders_differ_in_bf16_where_they_should():
    # One-element rows: h*inv = 1/sqrt(1 + eps) = 0.99014..., which bf16 rounds
    # to 0.98828125 before the scale; the float32 scale 1.3 then moves the
    # product to the other side of a bf16 rounding boundary.
    eps, g = 0.02, float(np.float32(1.3))
    x = np.ones((1, 1), dtype=BF16)
    scale = np.array([1.3], dtype=np.float32)
    v = 1 / math.sqrt(1 + eps)
    after_expected = bf16_round(v * g)
    before_expected = bf16_round(bf16_round(v) * g)
    assert after_expected != before_expected
    after = reference.rms_norm(x, RMSNormSpec(eps=eps), scale=scale)
    before = reference.rms_norm(x, RMSNormSpec(eps=eps, cast_order="before_scale"), scale=scale)
    assert after.dtype == before.dtype == BF16
    assert float(after[0, 0]) == after_expected
    assert float(before[0, 0]) == before_expected


def test_promote_output_dtype():
    x = np.ones((2, 4), dtype=BF16)
    assert reference.rms_norm(x, RMSNormSpec(output_dtype="promote")).dtype == np.float32
    assert reference.rms_norm(x, RMSNormSpec()).dtype == BF16


def test_nan_and_inf_stay_in_their_row():
    x = np.arange(24, dtype=np.float32).reshape(3, 8) + 1
    x[1, 2] = np.nan
    clean = reference.rms_norm(np.delete(x, 1, axis=0), RMSNormSpec())
    y = reference.rms_norm(x, RMSNormSpec())
    assert np.all(np.isnan(y[1]))
    np.testing.assert_array_equal(np.delete(y, 1, axis=0), clean)
    x[1, 2] = np.inf
    y = reference.rms_norm(x, RMSNormSpec())
    np.testing.assert_array_equal(np.delete(y, 1, axis=0), clean)


@pytest.mark.parametrize(
    "shape,axes",
    [((0, 8), (-1,)), ((2, 0, 3), (1,)), ((0, 3, 4), (1, 2))],
    ids=["empty-batch", "empty-normalized", "empty-batch-two-axes"],
)
def test_empty_inputs_give_empty_outputs(shape, axes):
    x = np.zeros(shape, dtype=np.float32)
    y = reference.rms_norm(x, RMSNormSpec(axes=axes))
    assert y.shape == shape and y.dtype == np.float32


def test_non_trailing_axis_nchw():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4, 5))
    y = reference.rms_norm(x, RMSNormSpec(axes=(1,), eps=1e-6))
    expected = x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(y, expected, rtol=1e-14)


def test_residual_sum_is_rounded_then_normalized():
    x = np.array([[1.0, 2.0**-9]], dtype=BF16)
    r = np.array([[2.0**-9, 1.0]], dtype=BF16)
    spec = RMSNormSpec()
    y, s = reference.rms_norm_residual(x, r, spec)
    assert s.dtype == BF16 and np.all(s.astype(np.float64) == 1.0)  # 1 + 2^-9 rounds to 1
    np.testing.assert_array_equal(y, reference.rms_norm(s, spec))
    y32, s32 = reference.rms_norm_residual(x, r, spec.replace(residual_dtype="float32"))
    assert s32.dtype == np.float32 and np.all(s32 == 1 + 2.0**-9)
    assert y32.dtype == BF16


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: reference.rms_norm(np.float32(1.0), RMSNormSpec()), RMSNormError, r"rank 0"),
        (
            lambda: reference.rms_norm(np.ones(3, np.int32), RMSNormSpec()),
            RMSNormTypeError,
            r"x has dtype int32",
        ),
        (
            lambda: reference.rms_norm(np.ones(3, bool), RMSNormSpec()),
            RMSNormTypeError,
            r"x has dtype bool",
        ),
        (
            lambda: reference.rms_norm(np.ones(3, np.complex64), RMSNormSpec()),
            RMSNormTypeError,
            r"x has dtype complex64",
        ),
        (
            lambda: reference.rms_norm(np.ones((2, 3)), RMSNormSpec(axes=(2,))),
            RMSNormError,
            r"axes=\(2,\) is out of range for an input of rank 2",
        ),
        (
            lambda: reference.rms_norm(np.ones((2, 3)), RMSNormSpec(), scale=np.ones(4)),
            RMSNormError,
            r"scale has shape \(4,\); expected \(3,\)",
        ),
        (
            lambda: reference.rms_norm(np.ones((2, 3)), RMSNormSpec(), scale=np.ones(3, np.int64)),
            RMSNormTypeError,
            r"scale has dtype int64",
        ),
        (
            lambda: reference.rms_norm(np.ones((2, 3)), RMSNormSpec(), bias=np.ones(3)),
            RMSNormError,
            r"bias was given but the spec has use_bias=False",
        ),
        (
            lambda: reference.rms_norm_residual(np.ones((2, 3)), np.ones((3, 2)), RMSNormSpec()),
            RMSNormError,
            r"residual has shape \(3, 2\); expected the shape of x, \(2, 3\)",
        ),
        (
            lambda: reference.rms_norm_vjp(np.ones((2, 3)), np.ones((2, 2)), RMSNormSpec()),
            RMSNormError,
            r"dy has shape \(2, 2\); expected the shape of x, \(2, 3\)",
        ),
    ],
    ids=[
        "rank0",
        "int32",
        "bool",
        "complex",
        "axis-range",
        "scale-shape",
        "scale-dtype",
        "bias-unused",
        "residual-shape",
        "dy-shape",
    ],
)
def test_reference_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
