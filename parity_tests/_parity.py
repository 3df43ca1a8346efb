"""Shared sample problems and the one parity check every backend test uses.

A backend test turns a :class:`Problem` into its own arrays, runs, converts
the results back to NumPy and calls :func:`check_forward` /
:func:`check_gradients`, which compare with core's float64 reference under
the tolerance table keyed by the dtype plan.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rmsnorm_core import (
    ROUNDING_AGREEMENT,
    RMSNormSpec,
    assert_close,
    dtype_plan,
    numpy_dtype,
    param_shape,
    reference,
    rounding_agreement,
)

PRESETS = list(RMSNormSpec.presets())
DTYPES = ["float32", "bfloat16", "float16"]

# (id, input shape, spec overrides): shapes differ from any export sample.
AXES_CASES = [
    ("trailing", (5, 7, 48), {}),
    ("nchw-c", (3, 12, 5, 4), {"axes": (1,)}),
    ("two-axes", (4, 6, 10), {"axes": (-2, -1)}),
    ("non-adjacent", (3, 5, 4, 6), {"axes": (1, 3)}),
    ("partial", (6, 40), {"partial": 0.25}),
    ("size1-axis", (5, 1), {}),
    ("empty-batch", (0, 16), {}),
    ("long-rows", (48, 1536), {}),  # large enough for torch's blocked eager kernel
]


@dataclasses.dataclass(frozen=True)
class Problem:
    """One sample: spec, input, parameters and a cotangent, as NumPy arrays."""

    spec: RMSNormSpec
    x: np.ndarray
    scale: np.ndarray | None
    bias: np.ndarray | None
    dy: np.ndarray


def make_problem(
    preset: str,
    dtype: str,
    shape: tuple[int, ...],
    overrides: dict,
    *,
    seed: int = 0,
    use_bias: bool | None = None,
) -> Problem:
    """Build a problem for ``preset`` with ``overrides``, inputs of ``dtype``."""
    spec = RMSNormSpec.preset(preset, **overrides)
    if use_bias is not None:
        spec = spec.replace(use_bias=use_bias)
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3.0).astype(numpy_dtype(dtype))
    pshape = param_shape(spec, shape)
    pdt = numpy_dtype(spec.param_dtype)
    scale = (
        (rng.uniform(0.5, 1.5, pshape) - spec.scale_offset).astype(pdt) if spec.use_scale else None
    )
    bias = rng.uniform(-0.5, 0.5, pshape).astype(pdt) if spec.use_bias else None
    out = dtype_plan(spec, dtype).output
    dy = rng.standard_normal(shape).astype(numpy_dtype(out))
    return Problem(spec, x, scale, bias, dy)


def check_forward(problem: Problem, y: np.ndarray, *, name: str) -> None:
    """Assert ``y`` equals the reference within the tolerance of the plan."""
    p = problem
    plan = dtype_plan(p.spec, p.x.dtype, None if p.scale is None else p.scale.dtype)
    expected = reference.rms_norm(p.x, p.spec, p.scale, p.bias)
    assert y.dtype == expected.dtype, f"{name}: dtype {y.dtype} != spec's {expected.dtype}"
    assert_close(y, expected, plan.precision, name=name)
    # Bit-for-bit agreement is meaningful where the last rounding is to a half
    # dtype (a float32 output carries float32 arithmetic-order differences).
    if plan.output in ("bfloat16", "float16") and plan.compute != plan.input and y.size >= 256:
        agreement = rounding_agreement(y, expected)
        assert agreement >= ROUNDING_AGREEMENT, (
            f"{name}: only {agreement:.1%} of elements equal the reference bit for bit; the "
            f"backend rounds at other points than the spec (cast_order={p.spec.cast_order!r}?)"
        )


def check_gradients(
    problem: Problem,
    dx: np.ndarray,
    dscale: np.ndarray | None,
    dbias: np.ndarray | None,
    *,
    name: str,
) -> None:
    """Assert the gradients equal the reference's within the gradient tolerance."""
    p = problem
    plan = dtype_plan(p.spec, p.x.dtype, None if p.scale is None else p.scale.dtype)
    ex, escale, ebias = reference.rms_norm_vjp(
        p.x, p.dy.astype(np.float64), p.spec, p.scale, p.bias
    )
    key = plan.gradient_precision
    assert_close(dx, ex, key, gradient=True, name=f"{name} dx")
    for label, got, want in (("dscale", dscale, escale), ("dbias", dbias, ebias)):
        assert (got is None) == (want is None), f"{name} {label}: presence differs"
        if want is not None:
            assert_close(got, want, key, gradient=True, name=f"{name} {label}")
