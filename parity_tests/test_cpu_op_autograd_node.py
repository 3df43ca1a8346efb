"""The native operator's autograd node (``csrc/rmsnorm_autograd.cpp``), at decode sizes
and above the fused op's: what autograd lets a user do between forward and backward
on the upstream's norm it lets them do on ours, with the same gradients.

Each test builds the same call twice, ours and the graph path's (``use_kernel("graph")``,
plain differentiable ops, whose gradients are the upstreams': test_torch_upstream_grads.py),
and compares the bits.
"""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm, use_kernel  # noqa: E402
from rmsnorm_torch.kernels._cpu_op import status  # noqa: E402
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT  # noqa: E402

pytestmark = pytest.mark.skipif(status() != "native", reason="the native operator is not built")

N = 96
ROWS = [3, FUSED_LIMIT // N + 2]  # a decode-sized call, and one above the fused op's size
OP = "rmsnorm_bridge::rmsnorm"


def _module(preset: str, dtype: torch.dtype, bias: bool = False) -> RMSNorm:
    spec = RMSNormSpec.preset(preset)
    if bias:
        spec = spec.replace(use_bias=True)
    m = RMSNorm.from_spec(spec, N).to(dtype)
    with torch.no_grad():
        m.weight.copy_(torch.randn(N, generator=torch.Generator().manual_seed(1)) * 0.3 + 1)
        if bias:
            m.bias.copy_(torch.randn(N, generator=torch.Generator().manual_seed(2)))
    return m


def _x(rows: int, dtype: torch.dtype) -> torch.Tensor:
    return (torch.randn(rows, N, generator=torch.Generator().manual_seed(rows)) * 3).to(dtype)


def _ops(fn) -> set:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


def _grads(m, x, dy, between=None):
    """y and the gradients of x and of every parameter, with ``between`` run after the
    forward and before the backward."""
    xr = x.clone().requires_grad_()
    y = m(xr)
    if between is not None:
        between(xr)
    params = [p for p in (m.weight, m.bias) if p is not None]
    return (y.detach(), *torch.autograd.grad(y, [xr, *params], dy))


def _both(m, x, dy, between=None, setup=None):
    results = []
    for kernel in ("auto", "graph"):
        if setup is not None:
            setup(m)
        with use_kernel(kernel):
            results.append(_grads(m, x, dy, between))
    return results


def _same(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.dtype == b.dtype and torch.equal(a, b), i


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("preset", ["torch", "llama", "gemma", "t5"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_the_node_runs_and_gives_the_graph_paths_gradients(preset, dtype, rows):
    m, x = _module(preset, dtype), _x(rows, dtype)
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(9)).to(dtype)
    xr = x.clone().requires_grad_()
    assert OP in _ops(lambda: m(xr))
    assert type(m(xr).grad_fn).__name__ == "CppFunction"  # the C++ node, not Python's
    _same(*_both(m, x, dy))


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_a_half_x_updated_in_place_after_forward_keeps_its_gradient(dtype, rows):
    """The upstream saves a widened copy of a half x, so updating x in place before the
    backward is allowed there; the node saves a copy too."""
    m, x = _module("llama", dtype), _x(rows, dtype)
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(9)).to(dtype)

    def update(xr):
        with torch.no_grad():
            xr.mul_(7)

    ours, theirs = _both(m, x, dy, between=update)
    _same(ours, theirs)
    _same(ours[1:], _grads(m, x, dy)[1:])  # as if nothing had been updated


@pytest.mark.parametrize("rows", ROWS)
def test_the_bias_and_an_offset_weight_updated_in_place_after_forward(rows):
    """No gradient reads the bias's values, and an offset weight enters as ``1 + w``, a
    new tensor: the upstreams allow both updates, and so does the node."""
    for preset, bias in (("torch", True), ("gemma", False)):
        m, x = _module(preset, torch.float32, bias), _x(rows, torch.float32)
        dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(9))
        before = [p.detach().clone() for p in (m.weight, m.bias) if p is not None]

        def update(_, m=m):
            with torch.no_grad():
                (m.bias if m.bias is not None else m.weight).add_(0.5)

        def restore(m=m, before=before):
            with torch.no_grad():
                for p, value in zip(
                    [p for p in (m.weight, m.bias) if p is not None], before, strict=True
                ):
                    p.copy_(value)

        ours, theirs = _both(m, x, dy, between=update, setup=restore)
        _same(ours, theirs)


@pytest.mark.parametrize("rows", ROWS)
def test_an_inference_tensor_with_a_weight_that_requires_grad(rows):
    m, dy = _module("torch", torch.float32), torch.ones(rows, N)
    with torch.inference_mode():
        x = _x(rows, torch.float32)
    grads = []
    for kernel in ("auto", "graph"):
        with use_kernel(kernel):
            grads.append(torch.autograd.grad(m(x), m.weight, dy))
    _same(*grads)


@pytest.mark.parametrize("rows", ROWS)
def test_only_the_weight_requires_grad_then_only_x(rows):
    m, x = _module("llama", torch.bfloat16), _x(rows, torch.bfloat16)
    dy = torch.randn(x.shape, generator=torch.Generator().manual_seed(9)).to(torch.bfloat16)
    results = []
    for kernel in ("auto", "graph"):
        with use_kernel(kernel):
            y = m(x)
            (dw,) = torch.autograd.grad(y, m.weight, dy)
            m.weight.requires_grad_(False)
            xr = x.clone().requires_grad_()
            (dx,) = torch.autograd.grad(m(xr), xr, dy)
            m.weight.requires_grad_(True)
            results.append((y, dw, dx))
    _same(*results)


def test_create_graph_on_two_specs_reaches_each_ones_own_plan():
    """A ``create_graph`` backward finds the call's plan by a handle the node keeps: two
    modules of different specs, their backwards interleaved, each differentiate their own
    (the same first-order bits as the graph path, finite second order close to it)."""
    mods = [_module("torch", torch.float32), _module("gemma", torch.float32)]
    mods[1].eps = 1e-3
    x = _x(5, torch.float32)
    outs = []
    for kernel in ("auto", "graph"):
        with use_kernel(kernel):
            xs = [x.clone().requires_grad_() for _ in mods]
            ys = [m(xi) for m, xi in zip(mods, xs, strict=True)]
            firsts = [torch.autograd.grad(y.square().sum(), xi, create_graph=True)[0]
                      for y, xi in zip(reversed(ys), reversed(xs), strict=True)]  # fmt: skip
            seconds = [torch.autograd.grad(g.square().sum(), xi)[0]
                       for g, xi in zip(firsts, reversed(xs), strict=True)]  # fmt: skip
            outs.append(([g.detach() for g in firsts], seconds))
    (ours_first, ours_second), (graph_first, graph_second) = outs
    _same(ours_first, graph_first)
    for a, b in zip(ours_second, graph_second, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_backwards_in_threads_at_once():
    """Eight threads each run forward and backward on their own module and input at
    once: each gets the graph path's bits (the node keeps no state between calls)."""
    mods = [_module(p, torch.bfloat16) for p in ("torch", "llama", "gemma", "t5")] * 2
    xs = [_x(r, torch.bfloat16) for r in range(1, 9)]
    dys = [torch.ones_like(x) for x in xs]
    with use_kernel("graph"):
        expected = [_grads(m, x, dy) for m, x, dy in zip(mods, xs, dys, strict=True)]
    got: list = [None] * len(mods)

    def run(i):
        for _ in range(20):
            got[i] = _grads(mods[i], xs[i], dys[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(mods))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ours, theirs in zip(got, expected, strict=True):
        _same(ours, theirs)
