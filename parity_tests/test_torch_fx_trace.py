"""``torch.fx.symbolic_trace`` of our modules: as the traced ROOT (torch traces its own
``nn.RMSNorm`` as root) and inside a traced model (a leaf, as torch's modules are), the
GraphModule computes torch's bits (forward, dx, dweight) at two ranks; ``ResidualRMSNorm``
traces too, and computes what torch's unfused ``x + residual`` then ``nn.RMSNorm`` does.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rmsnorm_core import RMSNormShapeError, RMSNormSpec
from rmsnorm_torch import ResidualRMSNorm, RMSNorm

CONFIGS = {
    "default": ((8,), {}),
    "eps": ((8,), {"eps": 1e-3}),
    "two-dims-no-affine": (((2, 4),), {"elementwise_affine": False}),
    "float64": ((8,), {"dtype": torch.float64}),
    "eps-true": ((8,), {"eps": True}),
}
DTYPES = [torch.float32, torch.bfloat16, torch.float64]
# torch's own unfused path warns where the weight's dtype is not the input's
pytestmark = pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")


def _x(shape, dtype, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _grads(module: nn.Module, params: list, *inputs: torch.Tensor):
    """``y`` (the first output), then the gradients of its sum with respect to the
    inputs and ``params``."""
    inputs = [t.clone().requires_grad_(True) for t in inputs]
    out = module(*inputs)
    y = out[0] if isinstance(out, tuple) else out
    grads = torch.autograd.grad(y.float().sum(), [*inputs, *params], allow_unused=True)
    return [y.detach(), *grads]


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and torch.equal(a, b)


def _weighted(module: nn.Module) -> nn.Module:
    if getattr(module, "weight", None) is not None:
        with torch.no_grad():
            g = torch.Generator().manual_seed(5)
            module.weight.copy_(torch.empty(module.weight.shape).uniform_(0.5, 1.5, generator=g))
    return module


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_traced_root_computes_torchs_traced_root_at_two_ranks(config, dtype):
    args, kwargs = CONFIGS[config]
    theirs = _weighted(nn.RMSNorm(*args, **kwargs))
    ours = _weighted(RMSNorm(*args, **kwargs))
    theirs_graph, ours_graph = torch.fx.symbolic_trace(theirs), torch.fx.symbolic_trace(ours)
    params = [ours_graph.weight] if ours.weight is not None else []
    their_params = [theirs_graph.weight] if theirs.weight is not None else []
    for rank, seed in ((2, 1), (4, 2)):
        sizes = tuple(theirs.normalized_shape)
        x = _x((3,) * (rank - len(sizes)) + sizes, dtype, seed)
        got, want = _grads(ours_graph, params, x), _grads(theirs_graph, their_params, x)
        assert all(_same(a, b) for a, b in zip(got, want, strict=True)), rank
        assert all(_same(a, b) for a, b in zip(got, _grads(ours, params, x), strict=True))


def test_traced_root_of_any_spec_equals_its_module_and_names_a_bad_shape():
    spec = RMSNormSpec.preset("llama", axes=(1,), use_bias=True)
    ours = _weighted(RMSNorm.from_spec(spec, 6))
    with torch.no_grad():
        ours.bias.uniform_(-1, 1, generator=torch.Generator().manual_seed(3))
    graph = torch.fx.symbolic_trace(ours)
    for shape in ((2, 6), (2, 6, 5, 3)):
        x = _x(shape, torch.bfloat16)
        got = _grads(graph, [graph.weight, graph.bias], x)
        want = _grads(ours, [ours.weight, ours.bias], x)
        assert all(_same(a, b) for a, b in zip(got, want, strict=True)), shape
    with pytest.raises(RMSNormShapeError, match=r"x has shape \(2, 5\) but normalized_shape"):
        graph(_x((2, 5), torch.float32))


class _Block(nn.Module):
    """A block as models write it: a linear layer, then a residual norm and a norm."""

    def __init__(self, residual_norm: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.residual_norm = residual_norm
        self.norm = norm

    def forward(self, x, residual):
        y, s = self.residual_norm(self.proj(x), residual)
        return self.norm(y) + s


class _TorchResidual(nn.Module):
    """torch's unfused residual norm: ``s = x + residual``, ``y = nn.RMSNorm(s)``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(*args, **kwargs)
        self.weight = self.norm.weight

    def forward(self, x, residual):
        s = x + residual
        return self.norm(s), s


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_residual_norm_traces_inside_a_model_and_as_root(dtype):
    torch.manual_seed(0)
    ours = _Block(_weighted(ResidualRMSNorm(8, eps=1e-3)), RMSNorm(8)).to(dtype)
    theirs = _Block(_weighted(_TorchResidual(8, eps=1e-3)), nn.RMSNorm(8)).to(dtype)
    theirs.proj.load_state_dict(ours.proj.state_dict())
    graph = torch.fx.symbolic_trace(ours)
    assert [n.target for n in graph.graph.nodes if n.op == "call_module"] == [
        "proj",
        "residual_norm",
        "norm",
    ]
    for shape in ((3, 8), (2, 3, 8)):
        x, r = _x(shape, dtype, 1), _x(shape, dtype, 2)
        params = [graph.residual_norm.weight, graph.proj.weight]
        got = _grads(graph, params, x, r)
        want = _grads(theirs, [theirs.residual_norm.weight, theirs.proj.weight], x, r)
        assert all(_same(a, b) for a, b in zip(got, want, strict=True)), shape
    root = torch.fx.symbolic_trace(ours.residual_norm)
    x, r = _x((2, 3, 8), dtype, 3), _x((2, 3, 8), dtype, 4)
    got, want = root(x, r), theirs.residual_norm(x, r)
    assert all(_same(a, b) for a, b in zip(got, want, strict=True))
