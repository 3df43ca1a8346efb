"""Inputs that are not contiguous (a transposed matrix, an NCHW tensor permuted to NHWC
as ConvNeXt-style blocks do, a channels-last tensor) get their upstream's output and
gradients bit for bit at every size, across each kernel threshold, laid out as the
upstream lays them out: contiguous for ``torch.nn.RMSNorm`` (``torch.rms_norm``'s
layout, also in traced code), x's strides for the Hugging Face norms (chains of
elementwise ops), never one at some sizes and the other at others. The cotangent is made
like the output (``ones_like``, ``randn_like``), as a loss's gradient is, so a layout
that changed with the size would change the gradients' bits; and a row's gradient does
not depend on the batch it is in."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from _sizes import MIDDLE_SIZE  # noqa: E402
from _torch_helpers import upstream_pair  # noqa: E402

from rmsnorm_torch import RMSNorm  # noqa: E402
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT  # noqa: E402

C = 64
# batches of NHWC / channels-last tensors of C x 16 x 16 (16,384 elements each), and
# rows of a transposed matrix of C columns: below MIDDLE_SIZE, between it and FUSED_LIMIT,
# and above FUSED_LIMIT
BATCHES = (1, 3, 16)


def _strided(layout: str, batch: int, dtype: torch.dtype) -> torch.Tensor:
    g = torch.Generator().manual_seed(batch)
    if layout == "nhwc":  # normalized over C, the last dim of the view
        return torch.randn(batch, C, 16, 16, generator=g).to(dtype).permute(0, 2, 3, 1)
    if layout == "channels-last":  # normalized over W (16), the last dim of the shape
        x = torch.randn(batch, C, 16, 16, generator=g).to(dtype)
        return x.contiguous(memory_format=torch.channels_last)
    return torch.randn(C, batch * 256, generator=g).to(dtype).t()  # rows of C columns


def _sizes_span_the_thresholds() -> None:
    sizes = [b * C * 256 for b in BATCHES]
    assert sizes[0] < MIDDLE_SIZE <= sizes[1] < FUSED_LIMIT <= sizes[2], sizes


def _run(module, x: torch.Tensor, make_dy):
    xx = x.detach().clone().requires_grad_()  # clone keeps x's strides
    y = module(xx)
    dy = make_dy(y)
    dx, dw = torch.autograd.grad(y, [xx, module.weight], dy)
    return y, dx, dw


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.stride() == b.stride() and torch.equal(a, b)


COTANGENTS = {
    "ones-like": lambda y: torch.ones_like(y) * 0.37,
    "randn-like": lambda y: torch.randn_like(y, generator=torch.Generator().manual_seed(1)),
}


# torch warns that a bfloat16 input with a float32 weight misses its fused kernel
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
@pytest.mark.parametrize("cotangent", sorted(COTANGENTS))
@pytest.mark.parametrize("dtypes", ["float32", "bfloat16", "bfloat16-weight-float32"])
@pytest.mark.parametrize("layout", ["nhwc", "channels-last", "transposed"])
def test_strided_inputs_get_torchs_output_and_gradients_at_every_size(layout, dtypes, cotangent):
    _sizes_span_the_thresholds()
    x_dtype = getattr(torch, dtypes.split("-")[0])
    w_dtype = torch.float32 if dtypes.endswith("float32") else x_dtype
    for batch in BATCHES:
        x = _strided(layout, batch, x_dtype)
        assert not x.is_contiguous()
        n = x.shape[-1]
        ours, peer = RMSNorm(n, dtype=w_dtype), torch.nn.RMSNorm(n, dtype=w_dtype)
        with torch.no_grad():
            peer.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(2))
            ours.weight.copy_(peer.weight)
        got = _run(ours, x, COTANGENTS[cotangent])
        want = _run(peer, x, COTANGENTS[cotangent])
        for name, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
            assert _same(a, b), (batch, x.numel(), name, a.stride(), b.stride())


@pytest.mark.parametrize("layout", ["nhwc", "transposed"])
def test_a_strided_rows_gradient_does_not_depend_on_its_batch(layout):
    m = RMSNorm(C)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(3))
    big = _strided(layout, BATCHES[-1], torch.float32)  # above FUSED_LIMIT
    first = big[:1] if layout == "nhwc" else big[:256]  # one image, or 256 rows
    assert not first.is_contiguous() and first.numel() < MIDDLE_SIZE
    got_big = _run(m, big, torch.ones_like)
    got_first = _run(m, first, torch.ones_like)
    k = first.shape[0]
    for a, b in zip(got_big[:2], got_first[:2], strict=True):  # y and dx of the shared rows
        assert torch.equal(a[:k], b)


@pytest.mark.parametrize("cotangent", sorted(COTANGENTS))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("preset", ["gemma", "llama", "t5"])
def test_strided_inputs_get_the_hugging_face_norms_layout_and_bits(preset, dtype, cotangent):
    """Hugging Face's norms are chains of elementwise ops, whose output keeps x's strides:
    ours is laid out the same, at every size, after a warm call on a contiguous input of
    the same rank and dtype (whose plan must not be taken for the strided one)."""
    x_dtype = getattr(torch, dtype)
    for batch in BATCHES:
        x = _strided("transposed", batch, x_dtype)
        ours, theirs = upstream_pair(preset, C)
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
            ours.weight.copy_(theirs.weight)
            ours(x.contiguous()[:2])  # warm: the contiguous call's plan, at x's rank
        got = _run(ours, x, COTANGENTS[cotangent])
        want = _run(theirs, x, COTANGENTS[cotangent])
        for what, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
            assert _same(a, b), (preset, batch, x.numel(), what, a.stride(), b.stride())


@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")
@pytest.mark.parametrize("x_dtype, w_dtype", [("float32", "bfloat16"), ("bfloat16", "float16")])
def test_a_weight_of_another_dtype_keeps_torchs_layout(x_dtype, w_dtype):
    """Where torch.rms_norm does not compute the call (a weight of another dtype) the
    graph path does, and its output is still laid out as torch.nn.RMSNorm's."""
    for batch in BATCHES:
        x = _strided("nhwc", batch, getattr(torch, x_dtype))
        ours, peer = RMSNorm(C, dtype=getattr(torch, w_dtype)), torch.nn.RMSNorm(C)
        peer = peer.to(getattr(torch, w_dtype))
        with torch.no_grad():
            peer.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(5))
            ours.weight.copy_(peer.weight)
        got = _run(ours, x, COTANGENTS["randn-like"])
        want = _run(peer, x, COTANGENTS["randn-like"])
        for what, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
            assert _same(a, b), (batch, what, a.stride(), b.stride())


def test_a_traced_module_gives_torchs_layout_to_any_input():
    """``jit.trace`` on a contiguous example, then a strided input: torch's layout and bits
    (the layout is not decided by the example's)."""
    ours, peer = RMSNorm(C), torch.nn.RMSNorm(C)
    traced = torch.jit.trace(ours, torch.randn(16, C))
    x = _strided("transposed", BATCHES[-1], torch.float32)
    got = _run(traced, x, COTANGENTS["randn-like"])
    want = _run(peer, x, COTANGENTS["randn-like"])
    for what, a, b in zip(("y", "dx", "dweight"), got, want, strict=True):
        assert _same(a, b), (what, a.stride(), b.stride())
