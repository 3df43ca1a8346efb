"""Autograd features work at every size: the fused op (small) and the blocked kernel
(large) must not lose double backward, torch.func or forward-mode AD. Each result is
compared with the formula written out in float64 (not with another of our paths)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.autograd.forward_ad as fwAD  # noqa: E402

from rmsnorm_core import RMSNormSpec, tolerance  # noqa: E402
from rmsnorm_torch import RMSNorm, rms_norm  # noqa: E402

SPEC = RMSNormSpec.preset("gemma")
SHAPES = [(8, 40), (200, 1024)]  # the fused op, the blocked kernel (>= 192 Ki elements)
IDS = ["small", "blocked"]


def _weight(n):
    return torch.linspace(-0.5, 0.5, n, dtype=torch.float64).float()


def _oracle(x, w):
    """The gemma formula written out in float64 torch ops: an independent reference
    whose autograd gives exact-enough gradients of every order."""
    h = x.double()
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + SPEC.eps) * (1 + w.double())


def _close(actual, expected):
    """Within the float32 row of the tolerance table, after the float64 value is rounded.
    Gradients are judged against their largest element, as the parity checks do."""
    tol = tolerance("float32")
    scale = float(expected.abs().max())
    torch.testing.assert_close(
        actual.double(), expected, rtol=tol.rtol, atol=tol.atol * max(1.0, scale)
    )


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_double_backward(shape):
    torch.manual_seed(0)
    w, x0 = _weight(shape[-1]), torch.randn(shape)
    x = x0.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(rms_norm(x, SPEC, w).pow(2).sum(), x, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.sum(), x)
    xd = x0.double().requires_grad_(True)
    (gxd,) = torch.autograd.grad(_oracle(xd, w).pow(2).sum(), xd, create_graph=True)
    (ggxd,) = torch.autograd.grad(gxd.sum(), xd)
    _close(gx.detach(), gxd.detach())
    _close(ggx, ggxd)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_torch_func_transforms(shape):
    torch.manual_seed(1)
    x, w = torch.randn(shape), _weight(shape[-1])
    xd = x.double().requires_grad_(True)
    (reference,) = torch.autograd.grad(_oracle(xd, w).sum(), xd)
    _close(torch.func.grad(lambda t: rms_norm(t, SPEC, w).sum())(x), reference)
    y, pull = torch.func.vjp(lambda t: rms_norm(t, SPEC, w), x)
    _close(pull(torch.ones_like(y))[0], reference)
    mapped = torch.func.vmap(lambda t: rms_norm(t, SPEC, w))(x.reshape(2, -1, shape[-1]))
    _close(mapped.reshape(shape), _oracle(x, w))
    tangent = torch.randn(shape)
    _, jvp_out = torch.func.jvp(lambda t: rms_norm(t, SPEC, w), (x,), (tangent,))
    _, jvp_ref = torch.func.jvp(lambda t: _oracle(t, w), (x.double(),), (tangent.double(),))
    _close(jvp_out, jvp_ref)


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_forward_mode_ad(shape):
    torch.manual_seed(2)
    m = RMSNorm.from_spec(SPEC, shape[-1])
    with torch.no_grad():
        m.weight.copy_(_weight(shape[-1]))
    x, tangent = torch.randn(shape), torch.randn(shape)
    with fwAD.dual_level():
        out = fwAD.unpack_dual(m(fwAD.make_dual(x, tangent))).tangent
    _, expected = torch.func.jvp(
        lambda t: _oracle(t, m.weight.detach()), (x.double(),), (tangent.double(),)
    )
    assert out is not None
    _close(out, expected)
