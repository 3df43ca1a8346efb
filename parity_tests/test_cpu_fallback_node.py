"""The pure-Python fallback's autograd node (``_cpu_norm._CpuNorm``, run where no C++
compiler is found and ``use_kernel("blocked")`` forces the CPU kernel) behaves as the
native node does: against the graph path, a transposed ``dy``, hook order, in-place
updates of an ``x`` or a weight that needs no saving, a ``create_graph`` backward and a
residual stream give the same bits and the same order. Run in a child process started
with ``RMSNORM_NATIVE=0`` (the operator is registered once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SCRIPT = r"""
import warnings
import torch
from rmsnorm_core import RMSNormSpec, tolerance
from rmsnorm_torch import RMSNorm, use_kernel
from rmsnorm_torch.kernels._cpu_op import status

warnings.simplefilter("ignore")
assert status().startswith("python (disabled by RMSNORM_NATIVE=0)"), status()
N = 33


def module(preset, dtype):
    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), N).to(dtype)
    with torch.no_grad():
        m.weight.copy_(torch.linspace(0.5, 1.5, N))
    return m


def run(preset, dtype, case):
    m = module(preset, dtype)
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(7, N, generator=g) * 3).to(dtype)
    dy = torch.randn(N, 7, generator=g).to(dtype)
    xr = x.clone().requires_grad_()
    if case == "transposed":
        return torch.autograd.grad(m(xr), [xr, m.weight], dy.t())
    if case == "hooks":
        order = []
        xr.register_hook(lambda _: order.append("x"))
        m.weight.register_hook(lambda _: order.append("weight"))
        m(xr).float().sum().backward()
        return order
    if case == "x in place":
        y = m(x)
        x.mul_(2)
        return torch.autograd.grad(y, m.weight, dy.t().contiguous())
    if case == "weight in place":
        y = m(x)
        with torch.no_grad():
            m.weight.mul_(2)
        return torch.autograd.grad(y, m.weight, dy.t().contiguous())
    if case == "create_graph":
        (gx,) = torch.autograd.grad(m(xr).float().square().sum(), xr, create_graph=True)
        return [gx.detach(), *torch.autograd.grad(gx.float().square().sum(), [xr])]
    out = xr + m(xr).to(dtype)  # a residual stream
    return torch.autograd.grad(out, xr, dy.t().contiguous())


checked = 0
for preset in ("torch", "llama", "gemma", "t5"):
    for dtype in (torch.float32, torch.bfloat16):
        for case in ("transposed", "hooks", "x in place", "weight in place", "create_graph",
                     "residual"):
            if case == "hooks" and preset == "gemma" and dtype == torch.float32:
                continue  # a leaf float32 x beside a cloned weight: the note's known order
            results = []
            for kernel in ("blocked", "graph"):
                with use_kernel(kernel):
                    results.append(run(preset, dtype, case))
            ours, theirs = results
            if case == "hooks":
                assert ours == theirs == ["weight", "x"], (preset, dtype, ours, theirs)
            elif case == "create_graph":
                assert torch.equal(ours[0], theirs[0]), (preset, dtype, case)
                if dtype == torch.float32:  # second order: the same terms in another order
                    tol = tolerance("float32")
                    torch.testing.assert_close(ours[1], theirs[1], rtol=tol.rtol, atol=tol.atol)
            else:
                same = all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
                assert same, (preset, dtype, case)
            checked += 1
print("ok", checked)
"""


def test_the_fallback_node_matches_the_graph_path():
    pytest.importorskip("torch")
    env = {**os.environ, "RMSNORM_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok 47", done.stderr[-3000:]
