"""A GraphModule traced with our module as its ROOT saves, loads, deep-copies and scripts
as one traced from ``torch.nn.RMSNorm`` does, and computes torch's bits at two ranks
afterwards; the traced root refuses what the module refuses (a complex ``ResidualRMSNorm``);
inside a traced model our module leaves the nodes torch's leaves (no unused ``get_attr``).
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from _sweep import covering, sweep
from torch import nn

from rmsnorm_core import RMSNormTypeError
from rmsnorm_torch import ResidualRMSNorm, RMSNorm

# torch's own warnings: parameters made complex; its unfused path where dtypes differ;
# torch.jit.script of any GraphModule (torch.nn.RMSNorm's too: GraphModule.__init__'s own
# instance-level annotations)
pytestmark = [
    pytest.mark.filterwarnings("ignore:The TorchScript type system doesn't support instance"),
    pytest.mark.filterwarnings("ignore:Complex modules are a new feature"),
    pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight"),
]


def _x(shape, dtype, seed):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _weighted(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        g = torch.Generator().manual_seed(5)
        module.weight.copy_(torch.empty(module.weight.shape).uniform_(0.5, 1.5, generator=g))
    return module


def _saved(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    buffer = io.BytesIO()
    torch.save(graph, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


HOW = {"save-load": _saved, "deepcopy": copy.deepcopy, "script": torch.jit.script}


class _TorchResidual(nn.Module):
    """torch's unfused residual norm: ``s = x + residual``, ``y = nn.RMSNorm(s)``."""

    def __init__(self, norm: nn.RMSNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x, residual):
        s = x + residual
        return self.norm(s), s


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and torch.equal(a, b)


#: eps forms, spec-held and not (a NaN eps scripts in neither: TorchScript has no nan literal)
EPS = [1e-3, None, True, float("inf"), 1e-39]


ROOT_ROWS = [
    (h, e, d) for h in HOW for e in EPS for d in (torch.float32, torch.bfloat16, torch.float64)
]
# the default run: every eps form with every way out (save-load, deepcopy, script) and in
# every dtype, every way out in every dtype
ROOT_ROWS = sweep(
    ROOT_ROWS, covering(ROOT_ROWS, [(0, 1), (0, 2), (1, 2)], lambda r: (r[0], repr(r[1]), r[2]))
)


@pytest.mark.parametrize(
    "how,eps,dtype", ROOT_ROWS, ids=[f"{h}-{e!r}-{d}" for h, e, d in ROOT_ROWS]
)
def test_traced_root_saves_copies_and_scripts_with_torchs_bits(how, eps, dtype):
    theirs = _weighted(nn.RMSNorm(8, eps=eps))
    ours = _weighted(RMSNorm(8, eps=eps))
    theirs_graph = HOW[how](torch.fx.symbolic_trace(theirs))
    ours_graph = HOW[how](torch.fx.symbolic_trace(ours))
    for rank, seed in ((2, 1), (4, 2)):
        x = _x((3,) * (rank - 1) + (8,), dtype, seed)
        want = theirs_graph(x)
        assert _same(want, theirs(x))
        assert _same(ours_graph(x), want), rank


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("how", list(HOW))
def test_traced_residual_root_saves_copies_and_scripts_with_torchs_bits(how, dtype):
    theirs = _TorchResidual(_weighted(nn.RMSNorm(8)))
    ours_graph = HOW[how](torch.fx.symbolic_trace(_weighted(ResidualRMSNorm(8))))
    for rank, seed in ((2, 1), (4, 2)):
        x, r = _x((3,) * (rank - 1) + (8,), dtype, seed), _x((3,) * (rank - 1) + (8,), dtype, 9)
        (y, s), (want_y, want_s) = ours_graph(x, r), theirs(x, r)
        assert _same(y, want_y) and _same(s, want_s), rank


@pytest.mark.parametrize("how", ["traced", "save-load"])
def test_traced_residual_root_made_complex_is_refused(how):
    graph = torch.fx.symbolic_trace(ResidualRMSNorm(8))
    graph = graph if how == "traced" else _saved(graph)
    graph.to(torch.complex64)
    x = _x((2, 8), torch.float32, 1)
    with pytest.raises(RMSNormTypeError, match=r"weight\.dtype=torch\.complex64 is not accepted"):
        graph(x, x)


def _nodes(model: nn.Module) -> list:
    return [(n.op, str(n.target)) for n in torch.fx.symbolic_trace(model).graph.nodes]


class _Residual(nn.Module):
    """A model calling a residual norm (ours, or torch's unfused one)."""

    def __init__(self, norm: nn.Module) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.norm = norm

    def forward(self, x):
        return self.norm(self.proj(x), x)


def test_inside_a_model_it_leaves_the_nodes_torchs_leaves():
    """One ``call_module`` node where torch's module has one, and no other node."""
    theirs = nn.Sequential(nn.Linear(8, 8), nn.RMSNorm(8))
    assert _nodes(nn.Sequential(nn.Linear(8, 8), RMSNorm(8))) == _nodes(theirs)
    residual = _nodes(_Residual(ResidualRMSNorm(8)))
    assert [op for op, _ in residual] == [op for op, _ in _nodes(_Residual(nn.RMSNorm(8)))]
