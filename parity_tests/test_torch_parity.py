"""torch eager (module and function) against the float64 reference: every preset,
dtype and axes case, forward and gradients."""

from __future__ import annotations

import pytest
from _parity import AXES_CASES, DTYPES, PRESETS, check_forward, check_gradients, make_problem

torch = pytest.importorskip("torch")
from _torch_helpers import module_for, to_numpy, to_torch  # noqa: E402

from rmsnorm_torch import rms_norm, rms_norm_residual, spec_kwargs  # noqa: E402

CASES = [(p, d, c) for p in PRESETS for d in DTYPES for c in AXES_CASES]
IDS = [f"torch-{d}-{p}-{c[0]}" for p, d, c in CASES]


@pytest.mark.parametrize("preset,dtype,case", CASES, ids=IDS)
def test_module_forward_and_gradients(preset, dtype, case):
    case_id, shape, overrides = case
    problem = make_problem(preset, dtype, shape, overrides, use_bias=case_id == "nchw-c")
    module = module_for(problem)
    x = to_torch(problem.x, grad=True)
    y = module(x)
    check_forward(problem, to_numpy(y), name=f"torch {dtype} {preset} {case_id}")
    y.backward(to_torch(problem.dy))
    check_gradients(
        problem,
        to_numpy(x.grad),
        to_numpy(module.weight.grad if module.weight is not None else None),
        to_numpy(module.bias.grad if module.bias is not None else None),
        name=f"torch {dtype} {preset} {case_id}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "grad"])
def test_function_equals_module(dtype, grad):
    problem = make_problem("gemma", dtype, (40, 1024), {})
    module = module_for(problem)
    x = to_torch(problem.x)
    with torch.set_grad_enabled(grad):
        y_fn = rms_norm(x, weight=module.weight, **spec_kwargs(problem.spec))
        assert torch.equal(y_fn, module(x))


@pytest.mark.parametrize("residual_dtype", ["input", "float32"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_fused_equals_unfused(dtype, residual_dtype):
    problem = make_problem("torch", dtype, (33, 1100), {"residual_dtype": residual_dtype})
    module = module_for(problem)
    x = to_torch(problem.x)
    r = to_torch(problem.x[::-1].copy())
    y, s = rms_norm_residual(
        x, r, weight=module.weight, **spec_kwargs(problem.spec), residual_dtype=residual_dtype
    )
    store = x.dtype if residual_dtype == "input" else torch.float32
    expected_s = (x.float() + r.float()).to(store)
    assert s.dtype == store and torch.equal(s, expected_s)
    unfused = rms_norm(s, weight=module.weight, **spec_kwargs(problem.spec)).to(y.dtype)
    assert y.dtype == x.dtype and torch.equal(y, unfused)
