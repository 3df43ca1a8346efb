"""A scripted module's gradients are ``torch.nn.RMSNorm``'s, bit for bit, on every call and
at every size: TorchScript's profiling executor, from a scripted function's second
call on, differentiates plain elementwise ops with its own symbolic formulas, whose bits
are not autograd's, so scripted code runs ``torch.rms_norm`` (whose gradient stays
torch's) wherever that op computes the call, above ``FUSED_LIMIT`` too."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_torch import RMSNorm  # noqa: E402
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT  # noqa: E402

N = 1024


def _grads(module, x: torch.Tensor):
    xx = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's mixed-dtype warning
        y = module(xx)
    return (y, *torch.autograd.grad(y, [xx, module.weight], torch.ones_like(y) * 0.37))


@pytest.mark.parametrize(
    "x_dtype, w_dtype",
    [("bfloat16", "float32"), ("float16", "float16"), ("float32", "float32")],
)
@pytest.mark.parametrize("rows", [7, 256])
def test_scripted_gradients_are_torchs_on_every_call(x_dtype, w_dtype, rows):
    w_dtype = getattr(torch, w_dtype)
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, N, generator=g).to(getattr(torch, x_dtype))
    # a class of its own: TorchScript compiles a class's forward once and its executor
    # keeps what it profiled, so each case starts from a first call as a user's does
    fresh = type(f"RMSNorm_{x_dtype}_{rows}", (RMSNorm,), {})
    peer, ours = torch.nn.RMSNorm(N, dtype=w_dtype), fresh(N, dtype=w_dtype)
    with torch.no_grad():
        peer.weight.copy_(torch.randn(N, generator=g))
        ours.weight.copy_(peer.weight)
    assert (x.numel() >= FUSED_LIMIT) == (rows == 256)
    want = _grads(peer, x)
    scripted = torch.jit.script(ours)
    for call in range(3):
        got = _grads(scripted, x)
        for name, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b), (call, name)
