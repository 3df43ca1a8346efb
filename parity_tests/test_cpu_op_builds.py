"""The native operator's two builds compute the same bits: the eight-lane loops (AVX2 and
F16C, on a CPU where ATen dispatches to AVX2) and the scalar loops (every other CPU, or
``ATEN_CPU_CAPABILITY=default``), each against the graph path in the same process, and
each in its own build folder so that one CPU never loads the other's binary."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from rmsnorm_torch.kernels._cpu_op import _vector_flags

_CHECK = textwrap.dedent(
    """
    import torch
    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch import RMSNorm, use_kernel
    from rmsnorm_torch.kernels._cpu_op import _vector_flags, status

    assert status() == "native", status()
    print("tag", repr(_vector_flags()[0]))
    compared = 0
    for preset in ("torch", "llama", "gemma", "flax", "t5"):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            for n in (8, 1001):  # whole lanes, and a tail in every row
                spec = RMSNormSpec.preset(preset).replace(use_bias=preset == "gemma")
                m = RMSNorm.from_spec(spec, n).to(dtype)
                g = torch.Generator().manual_seed(n)
                with torch.no_grad():
                    for p in m.parameters():
                        p.copy_(torch.randn(p.shape, generator=g))
                x = (torch.randn(13, n, generator=g) * 4).to(dtype)
                x[3, :5] = torch.tensor([1e-30, -0.0, 65000.0, 3e38, 1e-8]).to(dtype)
                # every gradient, then dx alone (parameters frozen), then the parameters'
                for wants_x, wants_p in ((True, True), (True, False), (False, True)):
                    for p in m.parameters():
                        p.requires_grad_(wants_p)
                    results = []
                    for kernel in ("blocked", "graph"):
                        xg = x.clone().requires_grad_(wants_x)
                        with use_kernel(kernel):
                            y = m(xg)
                        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
                        wanted = [xg] * wants_x + list(m.parameters()) * wants_p
                        results.append([y, *torch.autograd.grad(y, wanted, dy.to(y.dtype))])
                    for a, b in zip(*results):  # bits, where a NaN equals a NaN
                        assert a.dtype == b.dtype, (preset, dtype, n)
                        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
                        compared += 1
    print("compared", compared)
    """
)


def _run(env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CHECK], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_this_cpus_build_computes_the_graph_paths_bits_with_a_tail_in_every_row():
    out = _run(dict(os.environ))
    assert "compared 222" in out, out


@pytest.mark.skipif(_vector_flags()[0] == "", reason="this CPU's build is the scalar one already")
def test_the_scalar_build_computes_the_same_bits_in_a_folder_of_its_own():
    out = _run({**os.environ, "ATEN_CPU_CAPABILITY": "default"})
    assert "tag ''" in out and "compared 222" in out, out


def test_the_vector_flags_follow_atens_capability():
    tag, flags = _vector_flags()
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        assert (tag, flags) == ("_avx2", ["-mavx2", "-mf16c"])
    else:
        assert (tag, flags) == ("", [])
