"""Nothing in the Flax path keeps XLA from fusing it (why there is no Pallas kernel).

XLA fuses RMSNorm itself; our layer adds explicit rounding helpers and a
float32 scale. Compiled for the CPU here (the GPU compiler fuses by the same
rules), ours must compile to no more fused kernels than ``flax.linen.RMSNorm``
of the same input, forward and forward+backward, and to no opaque custom call
or loop that would split a fusion.
"""

from __future__ import annotations

import re

import pytest

jax = pytest.importorskip("jax")
import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_flax.linen import RMSNorm  # noqa: E402


def _entry_ops(fn, *args) -> list[str]:
    text = jax.jit(fn).lower(*args).compile().as_text()
    return re.findall(r"= \S+ ([\w-]+)\(", text[text.index("ENTRY") :])


def _programs(layer, x):
    params = layer.init(jax.random.key(0), x)

    def fwd_bwd(p, t):
        y, pull = jax.vjp(layer.apply, p, t)
        return pull(jnp.ones_like(y))

    return _entry_ops(layer.apply, params, x), _entry_ops(fwd_bwd, params, x)


@pytest.mark.parametrize("preset", ["flax", "llama", "gemma"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_ours_fuses_like_flax(preset, dtype):
    dt = getattr(jnp, dtype)
    x = jax.random.normal(jax.random.key(1), (48, 320), dt)
    ours = _programs(RMSNorm(spec=RMSNormSpec.preset(preset), dtype=dt), x)
    theirs = _programs(nn.RMSNorm(dtype=dt), x)
    for mine, peer in zip(ours, theirs, strict=True):
        assert mine.count("fusion") <= peer.count("fusion"), (mine, peer)
        assert not {"custom-call", "while", "call"} & set(mine), mine
