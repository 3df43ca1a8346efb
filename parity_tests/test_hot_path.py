"""The hot path stays short: project calls per layer call, counted with a profiler.

A torch forward makes at most 20 calls into our packages, with grad mode off and with
autograd recording it (the kernels differ: the CPU operator alone, or its autograd
node), and an nnx eager call at most 30, once the plan is cached (the first call
resolves it).
The counter is checked against a call that must count more (the first one).
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import pytest
from _sweep import covering, sweep

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


# Each side of FUSED_LIMIT (48 x 4096 elements) and of the tests' MIDDLE_SIZE (8 x 4096;
# test_cpu_op.py asserts both), decode shapes, and a rank-3 input.
SHAPES = [(1, 4096), (7, 4096), (8, 4096), (47, 4096), (48, 4096), (2, 3, 96), (4, 64, 1024)]
TORCH_PRESETS = ["torch", "llama", "gemma", "flax", "t5", "olmo2", "paper"]


ROWS = [
    (p, d, s) for p in TORCH_PRESETS for d in ("float32", "bfloat16", "float16") for s in SHAPES
]
# the default run: every shape (each side of each threshold) and every preset in every dtype
ROWS = sweep(ROWS, covering(ROWS, [(2, 1), (0, 1)]))


@pytest.mark.parametrize(
    "preset,dtype,shape", ROWS, ids=[f"{p}-{d}-{'x'.join(map(str, s))}" for p, d, s in ROWS]
)
def test_torch_forward_makes_at_most_20_project_calls(preset, dtype, shape):
    torch = pytest.importorskip("torch")
    from rmsnorm_core import RMSNormSpec
    from rmsnorm_torch import RMSNorm

    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), shape[-1])
    x = torch.randn(shape).to(getattr(torch, dtype))
    other_rank = x.reshape(-1, shape[-1])[:1].unsqueeze(0).unsqueeze(0)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):  # the weight requires grad: recorded under grad
            first = project_calls(lambda: m(x))
            calls = project_calls(lambda: m(x))
            m(other_rank)  # a call at another rank in between: both plans stay cached
            again = project_calls(lambda: m(x))
        assert sum(first.values()) > sum(calls.values())  # the counter sees the plan built
        assert sum(calls.values()) <= 20, (grad, calls.most_common())
        assert again == calls


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
