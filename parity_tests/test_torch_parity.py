"""torch functions against the module and the unfused residual path.

The module x case x preset x dtype parity against the float64 reference is
``test_parity_matrix.py`` (runner ``torch-eager``).
"""

from __future__ import annotations

import pytest
from _parity import DTYPES, make_problem

torch = pytest.importorskip("torch")
from _torch_helpers import module_for, to_torch  # noqa: E402

from rmsnorm_torch import rms_norm, rms_norm_residual  # noqa: E402


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "grad"])
def test_function_equals_module(dtype, grad):
    problem = make_problem("gemma", dtype, (40, 1024), {})
    module = module_for(problem)
    x = to_torch(problem.x)
    with torch.set_grad_enabled(grad):
        y_fn = rms_norm(x, problem.spec, module.weight)
        assert torch.equal(y_fn, module(x))


@pytest.mark.parametrize("residual_dtype", ["input", "float32"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_fused_equals_unfused(dtype, residual_dtype):
    problem = make_problem("torch", dtype, (33, 1100), {"residual_dtype": residual_dtype})
    module = module_for(problem)
    x = to_torch(problem.x)
    r = to_torch(problem.x[::-1].copy())
    y, s = rms_norm_residual(x, r, problem.spec, module.weight)
    store = x.dtype if residual_dtype == "input" else torch.float32
    expected_s = (x.float() + r.float()).to(store)
    assert s.dtype == store and torch.equal(s, expected_s)
    unfused = rms_norm(s, problem.spec, module.weight).to(y.dtype)
    assert y.dtype == x.dtype and torch.equal(y, unfused)
