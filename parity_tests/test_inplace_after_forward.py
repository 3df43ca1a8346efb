"""An in-place update of the norm's input (or of its weight) between forward and backward
behaves as in the upstream's norm, at every size: where the upstream saves a widened copy of a
half-precision input (torch.nn.RMSNorm, Llama, Gemma, OLMo2), backward works and gives
the upstream's gradients bit for bit; where it saves the input itself (float32 inputs,
T5's half-precision product), backward raises autograd's in-place error in both. The
weight likewise: Gemma's norm saves ``1 + w``, a new tensor, the others the weight itself.
Rows of 1024: 7 (the fused op or the graph path), 64 (the CPU operator where it
applies) and 256 (above FUSED_LIMIT: the CPU operator)."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from _torch_helpers import HF_NORMS, upstream_pair  # noqa: E402

N = 1024
PRESETS = ["torch", *HF_NORMS]


def _step(module, x0: torch.Tensor, update: str = "input"):
    """Forward on ``h = x * 1``, then ``h.add_(1)`` (or the weight's ``add_(0.1)``), then
    backward: the gradients, or the error autograd raised."""
    x = x0.clone().requires_grad_()
    h = x * 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's mixed-dtype warning
        y = module(h)
    if update == "input":
        h.add_(1.0)
    else:
        with torch.no_grad():
            module.weight.add_(0.1)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y.dtype)
    try:
        return torch.autograd.grad(y, [x, module.weight], dy)
    except RuntimeError as error:
        assert "modified by an inplace operation" in str(error)
        return None


@pytest.mark.parametrize("update", ["input", "weight"])
@pytest.mark.parametrize("rows", [7, 64, 256])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_an_inplace_update_after_forward_behaves_as_upstream(preset, dtype, rows, update):
    ours, theirs = upstream_pair(preset, N)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(rows))
        ours.weight.copy_(theirs.weight)
    x0 = torch.randn(rows, N, generator=torch.Generator().manual_seed(2)).to(getattr(torch, dtype))
    want, got = _step(theirs, x0, update), _step(ours, x0, update)
    assert (got is None) == (want is None), (
        preset,
        dtype,
        rows,
        "raised" if got is None else "ran",
    )
    if want is not None:
        for a, b in zip(got, want, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b)


@pytest.mark.parametrize("rows", [3, 700], ids=["graph-path", "operator"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("preset", ["torch", "llama", "t5"])
def test_an_inplace_bias_update_after_forward_is_allowed_at_every_size(preset, dtype, rows):
    """No gradient reads the bias's values (``y + b`` saves nothing), so updating it in
    place between forward and backward is allowed, on the graph path and the operator
    alike (the operator saved it, and refused, above its size); the gradients are the
    ones computed without the update."""
    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch import RMSNorm

    spec = RMSNormSpec.preset(preset).replace(use_bias=True)
    m = RMSNorm.from_spec(spec, 96).to(getattr(torch, dtype))
    x = torch.randn(rows, 96).to(m.weight.dtype).requires_grad_()
    dy = torch.randn_like(x)
    expected = torch.autograd.grad(m(x), (x, m.weight, m.bias), dy)
    y = m(x)
    with torch.no_grad():
        m.bias.add_(1.0)
    got = torch.autograd.grad(y, (x, m.weight, m.bias), dy)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
