"""The oracle's gradients against float64 finite differences, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmsnorm_core import RMSNormSpec, canonical_axes, param_shape, reference

GRAD_CASES = [
    ("trailing", (3, 6), {}),
    ("nchw-c", (2, 3, 2, 2), {"axes": (1,)}),
    ("two-axes", (2, 3, 4), {"axes": (-2, -1)}),
    ("partial", (3, 8), {"partial": 0.5}),
    ("eps-outside", (3, 5), {"eps_placement": "outside", "eps": 1e-3}),
    ("offset-bias", (3, 5), {"scale_offset": 1.0, "use_bias": True}),
    ("no-scale", (3, 5), {"use_scale": False}),
    ("before-scale", (4, 3), {"cast_order": "before_scale"}),
]


def _loss(x, dy, spec, scale, bias):
    return float(np.sum(reference.rms_norm(x, spec, scale, bias).astype(np.float64) * dy))


def _finite_difference(f, value, step=1e-6):
    grad = np.zeros_like(value)
    for idx in np.ndindex(value.shape):
        plus, minus = value.copy(), value.copy()
        plus[idx] += step
        minus[idx] -= step
        grad[idx] = (f(plus) - f(minus)) / (2 * step)
    return grad


@pytest.mark.parametrize("case_id,shape,kwargs", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_vjp_matches_finite_differences(case_id, shape, kwargs):
    spec = RMSNormSpec(compute_dtype="float64", **kwargs)
    rng = np.random.default_rng(len(case_id))
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    pshape = param_shape(spec, shape)
    scale = rng.standard_normal(pshape) if spec.use_scale else None
    bias = rng.standard_normal(pshape) if spec.use_bias else None
    dx, dscale, dbias = reference.rms_norm_vjp(x, dy, spec, scale, bias)
    np.testing.assert_allclose(
        dx, _finite_difference(lambda v: _loss(v, dy, spec, scale, bias), x), rtol=1e-6, atol=1e-8
    )
    if spec.use_scale:
        fd = _finite_difference(lambda s: _loss(x, dy, spec, s, bias), scale)
        np.testing.assert_allclose(dscale, fd, rtol=1e-6, atol=1e-8)
    else:
        assert dscale is None
    if spec.use_bias:
        fd = _finite_difference(lambda b: _loss(x, dy, spec, scale, b), bias)
        np.testing.assert_allclose(dbias, fd, rtol=1e-6, atol=1e-8)
    else:
        assert dbias is None


def test_partial_gradient_ignores_tail_in_statistic():
    # Elements past k only enter y linearly: dx_j = inv * dy_j * g_j there.
    spec = RMSNormSpec(partial=0.5, compute_dtype="float64")
    x = np.array([[1.0, 2.0, 30.0, 40.0]])
    dy = np.array([[0.0, 0.0, 1.0, 0.0]])
    dx, _, _ = reference.rms_norm_vjp(x, dy, spec)
    inv = 1 / np.sqrt(2.5 + 1e-6)
    assert dx[0, 3] == 0.0
    np.testing.assert_allclose(dx[0, 2], inv, rtol=1e-15)


@st.composite
def problems(draw):
    rank = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
    axes = tuple(
        draw(
            st.lists(
                st.integers(-rank, rank - 1),
                min_size=1,
                max_size=rank,
                unique_by=lambda a: a % rank,
            )
        )
    )
    seed = draw(st.integers(0, 2**31 - 1))
    return shape, axes, np.random.default_rng(seed).standard_normal(shape)


@given(problems(), st.floats(0.1, 100.0))
def test_scale_invariance(problem, factor):
    # With eps tiny against the rms, y(c*x) == y(x) for c > 0.
    shape, axes, x = problem
    spec = RMSNormSpec(axes=axes, eps=1e-30, compute_dtype="float64")
    np.testing.assert_allclose(
        reference.rms_norm(factor * x, spec), reference.rms_norm(x, spec), rtol=1e-12, atol=1e-12
    )


@given(problems())
def test_output_has_unit_rms_over_the_normalized_axes(problem):
    shape, axes, x = problem
    spec = RMSNormSpec(axes=axes, eps=1e-30, compute_dtype="float64")
    y = reference.rms_norm(x, spec)
    ms = np.mean(y * y, axis=canonical_axes(axes, len(shape)))
    np.testing.assert_allclose(ms, 1.0, rtol=1e-12)


@given(problems())
def test_gradient_is_orthogonal_to_x_without_scale(problem):
    # y is scale-invariant in x, so <dx, x> = 0 per block (eps -> 0).
    shape, axes, x = problem
    spec = RMSNormSpec(axes=axes, eps=1e-30, compute_dtype="float64", use_scale=False)
    dy = np.cos(np.arange(x.size)).reshape(shape)
    dx, _, _ = reference.rms_norm_vjp(x, dy, spec)
    dot = np.sum(dx * x, axis=canonical_axes(axes, len(shape)))
    np.testing.assert_allclose(dot, 0.0, atol=1e-9 * float(np.abs(dy).sum() + 1))
