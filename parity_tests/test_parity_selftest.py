"""The parity checker fails on deliberately wrong backends."""

from __future__ import annotations

import numpy as np
import pytest
from _parity import check_forward, check_gradients, make_problem

from rmsnorm_core import reference


@pytest.mark.parametrize(
    "wrong",
    [
        {"eps_placement": "outside", "eps": 1e-2},
        {"scale_offset": 1.0},
        {"partial": 0.5},
        {"eps": 1e-1},
    ],
    ids=["eps-outside", "lost-offset", "partial", "eps-value"],
)
def test_forward_check_fails_on_a_wrong_spec(wrong):
    # float32: a cast-order slip moves a half-precision result by one ulp, which
    # no tolerance can see; test_reference pins the two cast orders exactly.
    problem = make_problem("gemma", "float32", (16, 64), {})
    backend_spec = problem.spec.replace(**wrong)
    scale = problem.scale
    if "scale_offset" in wrong:  # the classic port bug: w used where 1 + w was meant
        backend_spec = problem.spec.replace(scale_offset=0.0)
    y = reference.rms_norm(problem.x, backend_spec, scale)
    with pytest.raises(AssertionError, match=r"elements outside"):
        check_forward(problem, y, name="wrong backend")


def test_forward_check_fails_on_a_wrong_dtype():
    problem = make_problem("flax", "bfloat16", (4, 32), {})
    y = reference.rms_norm(problem.x, problem.spec.replace(output_dtype="input"), problem.scale)
    with pytest.raises(AssertionError, match=r"dtype bfloat16 != spec's float32"):
        check_forward(problem, y, name="wrong dtype")


def test_gradient_check_fails_on_a_wrong_gradient():
    problem = make_problem("torch", "float32", (8, 32), {})
    dx, dscale, dbias = reference.rms_norm_vjp(
        problem.x, problem.dy.astype(np.float64), problem.spec, problem.scale
    )
    check_gradients(problem, dx.astype(np.float32), dscale.astype(np.float32), None, name="right")
    with pytest.raises(AssertionError, match=r"dx"):
        check_gradients(
            problem, (dx * 1.01).astype(np.float32), dscale.astype(np.float32), None, name="wrong"
        )
    with pytest.raises(AssertionError, match=r"dscale"):
        check_gradients(
            problem, dx.astype(np.float32), (dscale + 0.1).astype(np.float32), None, name="wrong"
        )


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("preset", ["llama", "gemma"])
def test_forward_check_fails_on_a_cast_order_slip(preset, dtype):
    problem = make_problem(preset, dtype, (16, 256), {"output_dtype": "input"})
    swapped = "after_scale" if problem.spec.cast_order == "before_scale" else "before_scale"
    y = reference.rms_norm(problem.x, problem.spec.replace(cast_order=swapped), problem.scale)
    with pytest.raises(AssertionError, match=r"bit for bit; the backend rounds at other points"):
        check_forward(problem, y, name="swapped cast order")
