"""``RMSNorm`` is a ``torch.nn.RMSNorm``: code that finds norms by ``isinstance`` (wrap
policies, weight-decay filters, initializers) finds ours, and nothing a subclass could
change does: its own ``forward`` under torch's ``__call__``, torch's state_dict keys,
pickling, TorchScript (with torch's constants on the scripted module), ``torch.export``,
``torch.fx`` and ``replace_norms``, which leaves ours alone.
"""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from rmsnorm_core import RMSNormSpec
from rmsnorm_torch import ResidualRMSNorm, RMSNorm, replace_norms


def _pair(*args, **kwargs):
    theirs, ours = nn.RMSNorm(*args, **kwargs), RMSNorm(*args, **kwargs)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(0))
        ours.weight.copy_(theirs.weight)
    return theirs, ours


def _x(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "module",
    [RMSNorm(8), RMSNorm.from_spec(RMSNormSpec.preset("gemma"), 8), ResidualRMSNorm(8)],
    ids=["torch-preset", "gemma", "residual"],
)
def test_every_module_is_a_torch_nn_rmsnorm_with_its_own_forward(module):
    assert isinstance(module, nn.RMSNorm)
    assert type(module).forward is not nn.RMSNorm.forward
    assert type(module).__call__ is nn.Module.__call__
    model = nn.Sequential(nn.Linear(8, 8), module)
    # a weight-decay filter as users write it finds the norm's weight
    no_decay = [
        f"{n}.{p}"
        for n, m in model.named_modules()
        if isinstance(m, nn.RMSNorm)
        for p, _ in m.named_parameters()
    ]
    assert no_decay == ["1.weight"]


def test_state_dict_pickle_and_deepcopy_are_torchs():
    theirs, ours = _pair(8)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    x = _x(3, 8)
    for clone in (pickle.loads(pickle.dumps(ours)), copy.deepcopy(ours)):
        assert type(clone) is RMSNorm and torch.equal(clone(x), theirs(x))


@pytest.mark.parametrize(
    "eps", [None, 1, 1e-5, -0.5, np.float64(1e-5)], ids=["none", "int", "float", "neg", "np64"]
)
def test_scripted_module_has_torchs_constants_and_computes_torchs(eps):
    theirs, ours = _pair(8, eps=eps)
    scripted = torch.jit.script(ours)  # torch.nn.RMSNorm's own refuses an int eps
    for name in ("eps", "normalized_shape", "elementwise_affine"):
        assert getattr(scripted, name) == getattr(theirs, name), name
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    x = _x(5, 8)
    assert torch.equal(torch.jit.load(buffer)(x).nan_to_num(), theirs(x).nan_to_num())


def test_a_numpy_float32_eps_still_scripts():
    # torch.nn.RMSNorm's own scripting refuses it as a constant; ours keeps scripting, and
    # m.eps reads back as torch's does (the NumPy scalar)
    eps = np.float32(1e-5)
    theirs, ours = _pair(8, eps=eps)
    assert type(ours.eps) is type(theirs.eps) is np.float32 and ours.eps == theirs.eps
    x = _x(3, 8)
    assert torch.equal(torch.jit.script(ours)(x), theirs(x))


def test_export_and_fx_trace_run_our_forward():
    theirs, ours = _pair(8)
    x = _x(4, 8)
    batch = {"x": {0: torch.export.Dim("batch")}}
    exported = torch.export.export(ours, (x,), dynamic_shapes=batch).module()
    assert torch.equal(exported(_x(6, 8)), theirs(_x(6, 8)))
    graph = torch.fx.symbolic_trace(nn.Sequential(ours))
    assert torch.equal(graph(x), theirs(x))


def test_replace_norms_replaces_torchs_and_leaves_ours():
    model = nn.Sequential(nn.RMSNorm(8), RMSNorm(8, eps=1e-3))
    ours = model[1]
    replace_norms(model)
    assert type(model[0]) is RMSNorm and model[1] is ours


@pytest.mark.parametrize("kind", ["eps-negative", "eps-nan-nested", "complex-weight"])
def test_a_module_with_no_spec_traces_as_torchs_does(kind):
    """``torch.jit.trace`` reads every name ``dir()`` lists; ``spec`` raises for a module no
    spec holds, so ``dir()`` leaves it out there (torch's module traces in all three)."""
    x = torch.randn(2, 8)
    if kind == "eps-negative":
        ours, theirs = RMSNorm(8, eps=-0.5), torch.nn.RMSNorm(8, eps=-0.5)
    elif kind == "eps-nan-nested":
        lin = torch.nn.Linear(8, 8)
        ours = torch.nn.Sequential(lin, RMSNorm(8, eps=float("nan")))
        theirs = torch.nn.Sequential(lin, torch.nn.RMSNorm(8, eps=float("nan")))
    else:
        x = x.to(torch.complex64)
        ours = RMSNorm(8, dtype=torch.complex64)
        theirs = torch.nn.RMSNorm(8, dtype=torch.complex64)
    for m in (ours, theirs):
        traced = torch.jit.trace(m, x)
        assert torch.equal(traced(x), m(x)) or torch.allclose(traced(x), m(x), equal_nan=True)
    assert "spec" not in dir(ours if kind != "eps-nan-nested" else ours[1])
    assert "spec" in dir(RMSNorm(8))
