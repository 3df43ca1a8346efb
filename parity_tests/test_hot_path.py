"""The hot path stays short: project calls per layer call, counted with a profiler.

A torch forward (no grad) makes at most 20 calls into our packages and an nnx
eager call at most 30, once the plan is cached (the first call resolves it).
The counter is checked against a call that must count more (the first one).
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest

PACKAGES = tuple(
    str(Path(__file__).resolve().parents[1] / name)
    for name in ("rmsnorm_core", "rmsnorm_torch", "rmsnorm_flax")
)


def project_calls(fn) -> collections.Counter:
    calls: collections.Counter = collections.Counter()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGES):
            calls[f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize(
    "shape", [(1, 4096), (8, 4096), (2, 3, 96)], ids=["1x4096", "8x4096", "2x3x96"]
)
@pytest.mark.parametrize("preset", ["torch", "llama", "gemma", "paper"])
def test_torch_forward_makes_at_most_20_project_calls(preset, shape):
    torch = pytest.importorskip("torch")
    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch import RMSNorm

    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), shape[-1])
    x = torch.randn(shape)
    with torch.no_grad():
        first = project_calls(lambda: m(x))
        calls = project_calls(lambda: m(x))
    assert sum(first.values()) > sum(calls.values())  # the counter sees the plan being built
    assert sum(calls.values()) <= 20, calls.most_common()


@pytest.mark.parametrize("preset", ["flax", "gemma", "paper"])
def test_nnx_eager_call_makes_at_most_30_project_calls(preset):
    pytest.importorskip("flax")
    import jax.numpy as jnp
    from flax import nnx

    from rmsnorm_core import RMSNormSpec
    from rmsnorm_flax import nnx as ours

    layer = ours.RMSNorm(96, spec=RMSNormSpec.preset(preset), rngs=nnx.Rngs(0))
    x = jnp.ones((2, 3, 96))
    first = project_calls(lambda: layer(x))
    calls = project_calls(lambda: layer(x))
    assert sum(first.values()) > sum(calls.values())
    assert sum(calls.values()) <= 30, calls.most_common()
