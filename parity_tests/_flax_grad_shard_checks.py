"""shard_map checks of ``test_flax_upstream_grads_sharded.py``, run in a subprocess with
8 simulated CPU devices (XLA_FLAGS is set before jax is imported): our linen and
nnx layers inside ``shard_map`` give flax's own ``y``, ``dx`` and ``dscale`` bit for
bit, with the batch split (data parallel: the scale's gradient summed across
devices) and with the normalized axis split (``axis_name``: flax's ``pmean``).
Each check prints ``PASS <name>`` or raises.
"""

from __future__ import annotations

import sys

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from rmsnorm_flax import linen as ours_linen
from rmsnorm_flax import nnx as ours_nnx

assert jax.device_count() == 8, jax.devices()
MESH = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))
LAYOUTS = {  # name: (x's partition, the scale's, axis_name)
    "batch": (P(("data", "model"), None), P(None), None),
    "feature": (P("data", "model"), P("model"), "model"),
}


def _inputs(dtype: str):
    kx, ks, kd = jax.random.split(jax.random.key(7), 3)
    x = (jax.random.normal(kx, (16, 24)) * 2).astype(dtype)
    scale = jax.random.uniform(ks, (24,), minval=0.5, maxval=1.5)
    return x, scale, jax.random.normal(kd, (16, 24))


def _grads(apply, layout: str):
    """``(y, dx, dscale)`` of ``apply(x, scale)`` run inside shard_map, under jit."""
    xs, ss, _ = LAYOUTS[layout]
    sharded = jax.shard_map(apply, mesh=MESH, in_specs=(xs, ss), out_specs=xs)

    def run(x, scale, dy):
        y, pull = jax.vjp(sharded, x, scale)
        return (y, *pull(dy.astype(y.dtype)))

    return jax.jit(run)


def _nnx_apply(cls, axis_name):
    def apply(x, scale):
        layer = cls(24 if axis_name is None else 6, axis_name=axis_name, rngs=nnx.Rngs(0))
        layer.scale[...] = scale
        return layer(x)

    return apply


def _assert_equal(got, expected, name: str) -> None:
    for part, a, b in zip(("y", "dx", "dscale"), got, expected, strict=True):
        assert a.dtype == b.dtype, (name, part, a.dtype, b.dtype)
        differ = int(jnp.sum(a != b))
        assert differ == 0, f"{name}: {part}: {differ} of {a.size} elements differ"


def check(api: str, layout: str, dtype: str) -> None:
    x, scale, dy = _inputs(dtype)
    axis_name = LAYOUTS[layout][2]
    if api == "linen":
        theirs, ours = (
            lambda x, s, m=m: m.apply({"params": {"scale": s}}, x)
            for m in (fnn.RMSNorm(axis_name=axis_name), ours_linen.RMSNorm(axis_name=axis_name))
        )
    else:
        theirs, ours = (_nnx_apply(c, axis_name) for c in (nnx.RMSNorm, ours_nnx.RMSNorm))
    expected = _grads(theirs, layout)(x, scale, dy)
    _assert_equal(_grads(ours, layout)(x, scale, dy), expected, f"{api}-{layout}-{dtype}")


CHECKS = {
    f"{api}-{layout}-{dtype}": (lambda a=api, lay=layout, d=dtype: check(a, lay, d))
    for api in ("linen", "nnx")
    for layout in LAYOUTS
    for dtype in ("float32", "bfloat16", "float16")
    if api == "linen" or dtype == "bfloat16"
}

if __name__ == "__main__":
    for name in sys.argv[1:] or CHECKS:
        CHECKS[name]()
        print(f"PASS {name}", flush=True)
