"""``RMSNorm.__call__`` skips ``nn.Module.__call__`` only where that would just call forward.

Each case runs the same thing on ``torch.nn.RMSNorm`` and on ours and compares
what the caller sees: which hooks fired, in which order, with what, and the
result; ``torch.fx`` keeps our module a leaf, ``module.compile()`` is used, a
forward assigned to the instance is called, and ``torch.jit.trace`` records
the module's scope.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rmsnorm_torch import RMSNorm

N = 12


def _pair():
    torch.manual_seed(0)
    theirs = nn.RMSNorm(N)
    ours = RMSNorm(N)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5)
        ours.weight.copy_(theirs.weight)
    return theirs, ours


def _x(requires_grad: bool = False) -> torch.Tensor:
    return torch.randn(
        3, N, generator=torch.Generator().manual_seed(1), requires_grad=requires_grad
    )


def _module_hooks(m: nn.Module, log: list) -> None:
    m.register_forward_pre_hook(lambda mod, args: log.append(("pre", args[0].shape)))
    m.register_forward_hook(lambda mod, args, out: log.append(("fwd", out.sum().item())))
    m.register_forward_pre_hook(
        lambda mod, args, kwargs: (args, kwargs) if log.append("pre_kw") else None,
        with_kwargs=True,
    )
    m.register_full_backward_pre_hook(lambda mod, g: log.append(("bwd_pre", g[0].shape)))
    m.register_full_backward_hook(lambda mod, gi, go: log.append(("bwd", go[0].shape)))


def _call_logged(m: nn.Module, register) -> list:
    log: list = []
    register(m, log)
    x = _x(requires_grad=True)
    y = m(x)
    y.sum().backward()
    log.append(("y", y.detach().sum().item(), x.grad.sum().item()))
    return log


def test_module_hooks_fire_as_on_torch_rmsnorm():
    theirs, ours = _pair()
    expected = _call_logged(theirs, _module_hooks)
    assert any(e[0] == "bwd" for e in expected if isinstance(e, tuple))
    assert _call_logged(ours, _module_hooks) == expected


def test_a_forward_hook_can_replace_the_output():
    theirs, ours = _pair()
    for m in (theirs, ours):
        m.register_forward_hook(lambda mod, args, out: out * 0 + 7)
    assert torch.equal(ours(_x()), theirs(_x()))
    assert torch.equal(ours(_x()), torch.full((3, N), 7.0))


_GLOBAL = {
    "pre": lambda log: nn.modules.module.register_module_forward_pre_hook(
        lambda mod, args: log.append(("pre", args[0].shape))
    ),
    "fwd": lambda log: nn.modules.module.register_module_forward_hook(
        lambda mod, args, out: log.append(("fwd", out.sum().item()))
    ),
    "bwd": lambda log: nn.modules.module.register_module_full_backward_hook(
        lambda mod, gi, go: log.append(("bwd", go[0].shape))
    ),
    "bwd_pre": lambda log: nn.modules.module.register_module_full_backward_pre_hook(
        lambda mod, go: log.append(("bwd_pre", go[0].shape))
    ),
}


@pytest.mark.parametrize("kind", sorted(_GLOBAL))
def test_each_global_module_hook_fires_as_on_torch_rmsnorm(kind):
    logs = {}
    for name, m in zip(("theirs", "ours"), _pair(), strict=True):
        log: list = []
        handle = _GLOBAL[kind](log)
        try:
            x = _x(requires_grad=True)
            m(x).sum().backward()
        finally:
            handle.remove()
        logs[name] = log
    assert len(logs["theirs"]) == 1
    assert logs["ours"] == logs["theirs"]
    ours = _pair()[1]
    ours(_x())  # the handle is gone: the fast path again, nothing logged
    assert len(logs["ours"]) == 1


def test_a_forward_assigned_to_the_instance_is_called():
    _, ours = _pair()
    ours.forward = lambda x: x + 1
    assert torch.equal(ours(_x()), _x() + 1)


def test_fx_symbolic_trace_keeps_the_norm_a_leaf_as_torch_rmsnorm():
    for m in _pair():
        model = nn.Sequential(nn.Linear(N, N), m)
        traced = torch.fx.symbolic_trace(model)
        targets = [n.target for n in traced.graph.nodes if n.op == "call_module"]
        assert targets == ["0", "1"], type(m)
        assert torch.equal(traced(_x()), model(_x()))


def test_module_compile_is_used():
    # dynamo's cache is per code object: the compilations of RMSNorm.forward by tests that
    # ran before in this worker count toward its recompile limit (8), past which dynamo
    # runs the frame eagerly and this backend is never called (a clean-clone run failed so)
    torch._dynamo.reset()
    theirs, ours = _pair()
    compiled_calls = []

    def backend(gm, example_inputs):
        compiled_calls.append(len(example_inputs))
        return gm.forward

    ours.compile(backend=backend)
    y = ours(_x())
    assert compiled_calls, "module.compile() was bypassed"
    assert torch.equal(y, theirs(_x()))
    torch._dynamo.reset()


def test_jit_trace_records_the_module_scope_as_torch_rmsnorm_does():
    scopes = []
    for m in _pair():
        model = nn.Sequential(nn.Linear(N, N), m)
        traced = torch.jit.trace(model, _x())
        assert torch.equal(traced(_x()), model(_x()))
        scopes.append({n.scopeName() for n in traced.inlined_graph.nodes()})
    assert "__module.1" in scopes[0]
    assert scopes[1] == scopes[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_plain_calls_match_torch_bit_for_bit(dtype):
    theirs, ours = _pair()
    theirs, ours = theirs.to(dtype), ours.to(dtype)
    x = _x().to(dtype)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
