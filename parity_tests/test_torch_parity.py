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


@pytest.mark.parametrize("residual_dtype", ["input", "float32"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_residual_gradients_equal_unfused(dtype, residual_dtype):
    # a contiguous residual takes the fused one-pass kernel, a strided one the unfused
    # add + norm; forward, s and every gradient (through y and through s) agree bit for bit
    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch import ResidualRMSNorm

    spec = RMSNormSpec.preset("llama", residual_dtype=residual_dtype, use_bias=True)
    m = ResidualRMSNorm.from_spec(spec, 1024)
    torch.manual_seed(0)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.1, 0.1)
    x0 = torch.randn(48, 1024).to(getattr(torch, dtype))
    r0 = torch.randn(48, 1024).to(getattr(torch, dtype))
    results = []
    for make in (lambda t: t.clone(), lambda t: t.t().contiguous().t()):
        x, r = x0.clone().requires_grad_(True), make(r0).requires_grad_(True)
        y, s = m(x, r)
        torch.manual_seed(1)
        dy, ds = torch.randn(y.shape).to(y.dtype), torch.randn(s.shape).to(s.dtype)
        torch.autograd.backward([y, s], [dy, ds])
        results.append((y, s, x.grad, r.grad, m.weight.grad.clone(), m.bias.grad.clone()))
        m.weight.grad = m.bias.grad = None
    for fused, unfused in zip(*results, strict=True):
        assert fused.dtype == unfused.dtype and torch.equal(fused, unfused)


def test_fused_residual_double_backward():
    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch import ResidualRMSNorm

    m = ResidualRMSNorm.from_spec(RMSNormSpec.preset("gemma"), 1024)
    x0, r0 = torch.randn(48, 1024), torch.randn(48, 1024)
    out = []
    for make in (lambda t: t.clone(), lambda t: t.t().contiguous().t()):
        x, r = x0.clone().requires_grad_(True), make(r0).requires_grad_(True)
        y, s = m(x, r)
        (gx,) = torch.autograd.grad((y.pow(2).sum() + s.sum()), x, create_graph=True)
        (ggr,) = torch.autograd.grad(gx.sum(), r)
        out.append((gx.detach(), ggr))
    torch.testing.assert_close(out[0][0], out[1][0])
    torch.testing.assert_close(out[0][1], out[1][1])
