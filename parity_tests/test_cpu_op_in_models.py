"""The native operator inside a model: where ``x`` also feeds something else (a residual
stream), its gradient is the upstream's bit for bit, and a call under
``torch.inference_mode()`` runs on every thread.

Autograd adds the partial gradients of ``x`` one at a time, after any gradient already
there: the upstream's norm hands over two (the statistic's and the product's) where it
uses ``x`` itself twice (a float32 ``x``; T5's half ``x``), so ``x + norm(x)`` rounds
as ``(g + p1) + p2``. Sizes: a few rows (decode), then each side of the fused op's
size (the operator runs them all where it is native).
"""

from __future__ import annotations

import pytest
import torch
from _sizes import MIDDLE_SIZE
from _sweep import covering, sweep

from rmsnorm_core import RMSNormSpec, tolerance
from rmsnorm_torch import RMSNorm
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

UPSTREAM = {
    "torch": None,
    "llama": "transformers.models.llama.modeling_llama:LlamaRMSNorm",
    "gemma": "transformers.models.gemma.modeling_gemma:GemmaRMSNorm",
    "t5": "transformers.models.t5.modeling_t5:T5LayerNorm",
}
N = 96


def _pair(preset: str, w_dtype: torch.dtype):
    if UPSTREAM[preset] is None:
        theirs = torch.nn.RMSNorm(N, eps=1e-6)
    else:
        module, name = UPSTREAM[preset].split(":")
        theirs = getattr(pytest.importorskip(module), name)(N, eps=1e-6)
    theirs = theirs.to(w_dtype)
    with torch.no_grad():
        theirs.weight.copy_(torch.randn(N, generator=torch.Generator().manual_seed(4)) * 0.3 + 1)
    ours = RMSNorm.from_spec(RMSNormSpec.preset(preset).replace(eps=1e-6), N).to(w_dtype)
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
    return theirs, ours


MODEL_ROWS = [
    (p, d, w, r)
    for p in UPSTREAM
    for d in ("float32", "bfloat16", "float16")
    for w in ("float32", "input")
    for r in (3, MIDDLE_SIZE // N + 3, FUSED_LIMIT // N + 5)
]
# the default run: every upstream in every dtype, with each weight dtype and at each size
# (3 rows, above MIDDLE_SIZE, above FUSED_LIMIT); every dtype with each weight dtype and size
MODEL_ROWS = sweep(
    MODEL_ROWS, covering(MODEL_ROWS, [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])
)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_bits_do_not_depend_on_how_many_threads_take_the_chunks(dtype):
    """The operator's threads take chunks from lanes and from each other's (more threads
    than cores here, so some lanes are taken by others): y and every gradient are
    ``F.rms_norm``'s at any thread count, with rows that do not fill the last chunk."""
    before = torch.get_num_threads()
    x_dtype = getattr(torch, dtype)
    m = RMSNorm(4096).to(x_dtype)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    x = (torch.randn(7 * 16 - 3, 4096, generator=torch.Generator().manual_seed(5)) * 3).to(x_dtype)
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(6)).to(x_dtype)
    xr = x.clone().requires_grad_()
    y = torch.nn.functional.rms_norm(xr, (4096,), m.weight)
    expected = (y, *torch.autograd.grad(y, [xr, m.weight], dy))
    try:
        for threads in (1, 2, 3, 5):
            torch.set_num_threads(threads)
            xr = x.clone().requires_grad_()
            y = m(xr)
            got = (y, *torch.autograd.grad(y, [xr, m.weight], dy))
            for name, a, b in zip(["y", "dx", "dweight"], got, expected, strict=True):
                assert torch.equal(a, b), f"{name} at {threads} threads"
    finally:
        torch.set_num_threads(before)


# torch's own module warns that a float32 weight on a half input takes its unfused path
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
@pytest.mark.parametrize(
    "preset,dtype,weights,rows", MODEL_ROWS, ids=[f"{p}-{d}-{w}-{r}" for p, d, w, r in MODEL_ROWS]
)
def test_a_residual_stream_gets_the_upstreams_gradient(preset, dtype, weights, rows):
    x_dtype = getattr(torch, dtype)
    theirs, ours = _pair(preset, x_dtype if weights == "input" else torch.float32)
    g = torch.Generator().manual_seed(rows)
    x = (torch.randn(rows, N, generator=g) * 3).to(x_dtype)
    grads = []
    for m in (theirs, ours):
        xr = x.clone().requires_grad_()
        y = m(xr)
        out = xr.to(y.dtype) + y  # the residual add after the norm
        dy = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
        grads.append(torch.autograd.grad(out, [xr, m.weight], dy))
    for name, a, b in zip(["dx", "dweight"], *grads, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), name


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_inference_mode_runs_the_operator_on_every_thread(dtype, threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        m = RMSNorm(4096).to(getattr(torch, dtype))
        x = torch.randn(FUSED_LIMIT // 4096 + 16, 4096).to(m.weight.dtype)
        with torch.inference_mode():
            y = m(x)
        with torch.no_grad():
            assert torch.equal(y, torch.nn.functional.rms_norm(x, (4096,), m.weight))
    finally:
        torch.set_num_threads(before)


def test_a_row_holding_nan_and_both_infinities_gets_torchs_gradient_bits():
    """Probe 2026-12-07: the statistic's gradient of such a row is a product of two NaNs,
    whose kept NaN (its sign) the compiler's operand order chose; it is now written out
    as ATen's (the second operand's), and dx is ``F.rms_norm``'s bit for bit."""
    m = RMSNorm(4096)
    x = torch.randn(64, 4096, generator=torch.Generator().manual_seed(0))
    x[0, 1140], x[0, 1144], x[0, 2052] = float("inf"), float("nan"), -float("inf")
    grads = []
    for f in (m, lambda t: torch.nn.functional.rms_norm(t, (4096,), m.weight, m.eps)):
        xr = x.clone().requires_grad_()
        grads.append(torch.autograd.grad(f(xr), xr, torch.ones(64, 4096))[0])
    assert torch.equal(grads[0].view(torch.int32), grads[1].view(torch.int32))


# torch's own module warns that a float32 weight on a half input takes its unfused path
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
@pytest.mark.parametrize("rows", [3, FUSED_LIMIT // N + 5])
@pytest.mark.parametrize(
    "preset, dtype", [("torch", "float32"), ("llama", "float32"), ("t5", "bfloat16")]
)
def test_a_differentiable_backward_keeps_the_residual_streams_gradient(preset, dtype, rows):
    """``create_graph=True`` (a gradient penalty): the first-order gradients are the
    upstream's bit for bit, and they are differentiable, to within float32 rounding of
    the upstream's second order (its terms are added in another order)."""
    x_dtype = getattr(torch, dtype)
    theirs, ours = _pair(preset, x_dtype)
    x = torch.randn(rows, N, generator=torch.Generator().manual_seed(3)) * 3
    firsts, seconds = [], []
    for m in (theirs, ours):
        xr = x.to(x_dtype).requires_grad_()
        h = xr * 1.5
        out = h + m(h)
        dy = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
        gx, gw = torch.autograd.grad(out, [xr, m.weight], dy, create_graph=True)
        firsts.append((gx.detach(), gw.detach()))
        penalty = gx.float().square().sum() + gw.float().square().sum()
        seconds.append(torch.autograd.grad(penalty, [xr, m.weight]))
    for name, a, b in zip(["dx", "dweight"], *firsts, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), name
    tol = tolerance("float32")  # the penalty's float32 sums, added in another order
    for a, b in zip(*seconds, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=tol.rtol, atol=tol.atol)
