"""A CPU call that autograd need not record runs the native operator at every size.

The kernel choice then depends on the grad mode and on ``requires_grad``: each test
here changes one of them, or something else the decode memo rests on, between calls
of one module, and checks that the call still gives the bits, the autograd graph and
the errors of a fresh module (or of the upstream) computing the same call.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.autograd.forward_ad as fwAD  # noqa: E402
from _torch_helpers import bits, upstream_pair  # noqa: E402

from rmsnorm_core import RMSNormShapeError, RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm  # noqa: E402
from rmsnorm_torch.kernels._cpu_op import status  # noqa: E402

pytestmark = pytest.mark.skipif(status() != "native", reason="the native operator is not built")

OP = "rmsnorm_bridge::rmsnorm"
PRESETS = ["torch", "llama", "gemma", "olmo2", "t5"]
SHAPES = [(1, 4100), (6, 4096), (2, 3, 40), (1, 1)]


def _ops(fn) -> set:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("preset", PRESETS)
def test_the_operator_gives_the_upstreams_bits_where_autograd_is_off(preset, dtype, shape):
    """Under ``no_grad`` the operator runs (profiled), and its output is the upstream
    norm's bits, with float32 weights and with weights in the input's dtype (T5: float32
    only, as in ``test_upstream_bits``), cold and warm."""
    dtype = getattr(torch, dtype)
    ours, theirs = upstream_pair(preset, shape[-1])
    g = torch.Generator().manual_seed(7 + sum(shape))
    x = (torch.randn(shape, generator=g) * 3).to(dtype)
    w = torch.randn(shape[-1], generator=g) * 0.4 + (0.0 if preset == "gemma" else 1.0)
    params = [torch.float32] + ([] if preset == "t5" else [dtype])
    for param_dtype in params:
        with torch.no_grad():
            ours.weight.copy_(w)
            theirs.weight.copy_(w)
        ours, theirs = ours.to(param_dtype), theirs.to(param_dtype)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Mismatch dtype between input and weight")
            expected = theirs(x)
            assert OP in _ops(lambda m=ours: m(x))
            for _ in range(2):  # the keyed path, then the memo
                y = ours(x)
                assert y.dtype == expected.dtype and torch.equal(bits(y), bits(expected))


def test_grad_mode_changes_between_calls_of_one_module():
    """No-grad, grad, no-grad, grad: each call has the graph its grad mode asks for, and
    the gradients of a fresh module."""
    m = RMSNorm.from_spec(RMSNormSpec.preset("llama"), 4096).to(torch.bfloat16)
    x = torch.randn(3, 4096).to(torch.bfloat16)
    dy = torch.randn(3, 4096).to(torch.bfloat16)
    fresh = RMSNorm.from_spec(RMSNormSpec.preset("llama"), 4096).to(torch.bfloat16)
    expected = torch.autograd.grad(fresh(x.requires_grad_()), (x, fresh.weight), dy)
    x.requires_grad_(False)
    for _ in range(2):
        with torch.no_grad():
            y = m(x)
        assert y.grad_fn is None and not y.requires_grad
        xg = x.clone().requires_grad_()
        y = m(xg)
        assert y.grad_fn is not None
        got = torch.autograd.grad(y, (xg, m.weight), dy)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    m.weight.requires_grad_(False)  # grad mode on, nothing requires grad: nothing recorded
    assert m(x).grad_fn is None
    xg = x.clone().requires_grad_()
    y = m(xg)  # x requires grad: recorded again
    assert y.grad_fn is not None
    assert torch.equal(torch.autograd.grad(y, xg, dy)[0], expected[0])


def test_transforms_after_a_warm_no_grad_call():
    """After the operator's memo is warm, ``vmap``, forward-mode AD and ``inference_mode``
    calls of the same module compute what a fresh module computes (the operator takes no
    ``torch.func`` wrapper and carries no tangent)."""
    m = RMSNorm(96)
    xb = torch.randn(4, 5, 96)
    with torch.no_grad():
        m(xb[0])
        m(xb[0])
        fresh = RMSNorm(96)
        looped = torch.stack([fresh(row) for row in xb])
        assert torch.equal(torch.func.vmap(m)(xb), looped)
        tangent = torch.randn(5, 96)
        with fwAD.dual_level():
            out = fwAD.unpack_dual(m(fwAD.make_dual(xb[0], tangent)))
        _, expected = torch.func.jvp(fresh, (xb[0],), (tangent,))
        assert out.tangent is not None and torch.equal(out.tangent, expected)
    with torch.inference_mode():
        assert torch.equal(m(xb[1]), fresh(xb[1].clone()))


def test_a_changed_weight_or_layout_after_a_warm_no_grad_call():
    """The memo of an operator call checks what it rests on: a weight of another shape
    raises as a fresh module does, another dtype or a non-contiguous x gives a fresh
    module's result."""
    m = RMSNorm(16)
    x = torch.randn(4, 16)
    with torch.no_grad():
        m(x)
        m(x)
        for bad in (torch.ones(1, 16), torch.ones(16, 1), torch.ones(8)):
            m.weight = torch.nn.Parameter(bad)
            fresh = RMSNorm(16)
            fresh.weight = torch.nn.Parameter(bad)
            for module in (fresh, m):
                with pytest.raises(RMSNormShapeError, match="weight"):
                    module(x)
        m.weight = torch.nn.Parameter(torch.linspace(0.5, 2, 16, dtype=torch.bfloat16))
        fresh = RMSNorm(16)
        fresh.weight = torch.nn.Parameter(m.weight.detach().clone())
        assert torch.equal(m(x), fresh(x))
        xt = torch.randn(16, 4).t()
        assert torch.equal(m(xt), fresh(xt)) and m(xt).stride() == fresh(xt).stride()
        with pytest.raises(RMSNormShapeError, match="x"):
            m(torch.randn(4, 17))


def test_a_non_contiguous_call_leaves_the_next_contiguous_call_to_the_operator():
    """A transposed x takes the fused op (torch's layout); the contiguous call after it
    takes the operator again, not a memo the transposed call left."""
    m = RMSNorm(64)
    x, xt = torch.randn(3, 64), torch.randn(64, 3).t()
    with torch.no_grad():
        for _ in range(2):
            assert OP in _ops(lambda: m(x))
            ops = _ops(lambda: m(xt))
            assert "aten::rms_norm" in ops and OP not in ops
        assert OP in _ops(lambda: m(x))


def _strided(shape, strides):
    x = torch.empty_strided(shape, strides)
    return x.copy_(torch.randn(shape)) if x.numel() else x


# contiguous inputs whose size-1 dims carry strides other than row-major ones (the last
# token of a batch, h[:, -1:, :], among them), an empty one, and one above the operator's size
ODD_LAYOUTS = {
    "last-token": lambda: torch.randn(1, 10, 64)[:, -1:, :],
    "permuted": lambda: torch.randn(3, 64, 1).permute(0, 2, 1),
    "odd-stride": lambda: _strided((5, 1, 64), (64, 13, 1)),
    "large": lambda: _strided((5000, 1, 64), (64, 999, 1)),
    "empty": lambda: _strided((2, 0, 64), (0, 64, 1)),
    "empty-odd": lambda: _strided((3, 1, 0, 96), (96, 1000, 1000, 1)),
    "one-column": lambda: _strided((5, 1), (1, 13)),
    "one-element-block": lambda: _strided((2, 1, 3, 1), (3, 6, 1, 1)),
}


@pytest.mark.parametrize("layout", list(ODD_LAYOUTS))
@pytest.mark.parametrize("preset", ["torch", "llama"])
def test_y_is_laid_out_as_the_upstreams_for_odd_size_one_strides(preset, layout):
    """A contiguous x may carry any stride on a dim of size 1; y is laid out as the
    upstream's elementwise ops (TensorIterator) lay it out, not as x, in both grad modes
    and in the operator's Python form (an empty x, which "auto" never gives the
    operator, aside: an empty y's layout follows no single upstream rule)."""
    from rmsnorm_torch.kernels._cpu_fallback import forward as python_forward

    x = ODD_LAYOUTS[layout]()
    n = x.shape[-1]
    ours, theirs = upstream_pair(preset, n)
    expected = theirs(x)
    assert x.is_contiguous()
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            for _ in range(2):
                y = ours(x)
                assert y.stride() == expected.stride() and torch.equal(y, expected)
    if x.numel():
        f32 = torch.float32
        y = python_forward(x, [n], None, None, 1e-6, False, f32, f32, False)[0]
        assert y.stride() == expected.stride()


@pytest.mark.parametrize("rows", [2, 500], ids=["decode-size", "operator-size"])
def test_a_zero_tensor_input_is_normalized_to_zeros(rows):
    """autograd's storage-less zeros (a ZeroTensor) take the graph path, as
    ``torch.nn.RMSNorm`` computes them, in both grad modes."""
    m, theirs = RMSNorm(400), torch.nn.RMSNorm(400)
    x = torch._efficientzerotensor((rows, 400))
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            assert torch.equal(m(x), theirs(x))
