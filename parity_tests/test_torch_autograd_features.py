"""Autograd features work at every size: the blocked kernel (from 32768 elements) must
not lose double backward, torch.func or forward-mode AD that the graph path has."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.autograd.forward_ad as fwAD  # noqa: E402

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm, rms_norm  # noqa: E402

SPEC = RMSNormSpec.preset("gemma")
SHAPES = [(8, 40), (64, 1024)]  # graph path, blocked kernel
IDS = ["small", "blocked"]


def _weight(n):
    return torch.linspace(-0.5, 0.5, n, dtype=torch.float64).float()


def _graph_twin(x):
    """The same values on the graph path (the blocked kernel takes contiguous inputs only)."""
    return x.t().contiguous().t()


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_double_backward(shape):
    torch.manual_seed(0)
    w, x0 = _weight(shape[-1]), torch.randn(shape)
    results = []
    for make in (lambda t: t.clone(), _graph_twin):
        x = make(x0).requires_grad_(True)
        (gx,) = torch.autograd.grad(rms_norm(x, SPEC, w).pow(2).sum(), x, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.sum(), x)
        results.append((gx.detach(), ggx))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_torch_func_transforms(shape):
    torch.manual_seed(1)
    x, w = torch.randn(shape), _weight(shape[-1])
    plain = torch.func.grad(lambda t: rms_norm(t, SPEC, w).sum())(x)
    xr = x.clone().requires_grad_(True)
    (reference,) = torch.autograd.grad(rms_norm(xr, SPEC, w).sum(), xr)
    torch.testing.assert_close(plain, reference)
    y, pull = torch.func.vjp(lambda t: rms_norm(t, SPEC, w), x)
    torch.testing.assert_close(pull(torch.ones_like(y))[0], reference)
    mapped = torch.func.vmap(lambda t: rms_norm(t, SPEC, w))(x.reshape(2, -1, shape[-1]))
    torch.testing.assert_close(mapped.reshape(shape), rms_norm(x, SPEC, w))
    tangent = torch.randn(shape)
    _, jvp_out = torch.func.jvp(lambda t: rms_norm(t, SPEC, w), (x,), (tangent,))
    _, jvp_graph = torch.func.jvp(lambda t: rms_norm(t, SPEC, w), (_graph_twin(x),), (tangent,))
    torch.testing.assert_close(jvp_out, jvp_graph)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_mode_ad(shape):
    torch.manual_seed(2)
    m = RMSNorm.from_spec(SPEC, shape[-1])
    x, tangent = torch.randn(shape), torch.randn(shape)
    with fwAD.dual_level():
        out = fwAD.unpack_dual(m(fwAD.make_dual(x, tangent))).tangent
    with fwAD.dual_level():
        twin = fwAD.unpack_dual(m(fwAD.make_dual(_graph_twin(x), tangent))).tangent
    assert out is not None
    torch.testing.assert_close(out, twin)
