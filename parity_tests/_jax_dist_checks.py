"""JAX across 2 processes (``jax.distributed.initialize``), run by ``test_distributed.py``.

Each process has one CPU device; the global mesh spans both. Every check
compares the distributed forward and gradients with the same computation in
one process (the full arrays on this process's own device).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx as fnnx
from jax.experimental import multihost_utils
from jax.sharding import PartitionSpec as P

from rmsnorm_core import RMSNormSpec, compare, dtype_plan
from rmsnorm_flax import linen, nnx
from rmsnorm_flax.plugins._distributed_runner import global_array, init

MESH = init()
assert jax.process_count() == 2 and jax.device_count() == 2, (jax.process_count(), jax.devices())
SPEC = RMSNormSpec.preset("gemma")


def _host(a):
    return np.asarray(multihost_utils.process_allgather(a, tiled=True))


def _close(got, want, key, name, gradient=False):
    result = compare(np.asarray(got), np.asarray(want), key, gradient=gradient)
    assert result.passed, f"process {jax.process_index()} {name}: {result.reason}"


def _arrays(dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4, 6, 64)) * 3).astype(jnp.dtype(dtype))
    scale = rng.uniform(-0.5, 0.5, 64).astype(np.float32)
    return x, scale


def _apply(kind, axis_name):
    if kind == "linen":
        module = linen.RMSNorm(spec=SPEC, axis_name=axis_name)
        return lambda x, s: module.apply({"params": {"scale": s}}, x)

    def f(x, s):
        model = nnx.RMSNorm(s.shape[0], spec=SPEC, axis_name=axis_name, rngs=fnnx.Rngs(0))
        model.scale[...] = s
        return model(x)

    return f


def _local(fn, x, scale):
    """The reference: one process, its own device, the whole arrays."""
    device = jax.local_devices()[0]
    xl, sl = jax.device_put(x, device), jax.device_put(scale, device)
    y, pull = jax.vjp(jax.jit(fn), xl, sl)
    return (np.asarray(y), *map(np.asarray, pull(jnp.ones_like(y))))


def check(kind: str, layout: str, dtype: str) -> None:
    x, scale = _arrays(dtype)
    plan = dtype_plan(SPEC, dtype)
    expected = _local(_apply(kind, None), x, scale)
    if layout == "batch":  # jit + NamedSharding, the batch split across the processes
        fn, x_spec, s_spec = _apply(kind, None), P("p", None, None), P(None)
    else:  # shard_map, the normalized axis split across the processes: one psum
        x_spec, s_spec = P(None, None, "p"), P("p")
        fn = jax.shard_map(
            _apply(kind, "p"), mesh=MESH, in_specs=(x_spec, s_spec), out_specs=x_spec
        )
    xg, sg = global_array(MESH, x, x_spec), global_array(MESH, scale, s_spec)
    jitted = jax.jit(fn)
    if layout == "feature":
        hlo = jitted.lower(xg, sg).compile().as_text()
        assert "all-reduce" in hlo and "all-gather" not in hlo, "x was gathered"
    y, pull = jax.vjp(jitted, xg, sg)
    dx, ds = pull(jnp.ones_like(y))
    name = f"{kind} {layout} {dtype}"
    _close(_host(y), expected[0], plan.precision, name)
    _close(_host(dx), expected[1], plan.gradient_precision, name + " dx", True)
    _close(_host(ds), expected[2], plan.gradient_precision, name + " dscale", True)


if __name__ == "__main__":
    for name in sys.argv[1:]:
        kind, layout, dtype = name.split("-")
        check(kind, layout, dtype)
        print(f"PASS {name}", flush=True)
