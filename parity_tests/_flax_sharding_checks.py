"""Sharding checks, run in a subprocess with 8 simulated CPU devices.

``test_flax_sharding.py`` runs this file with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (it must be set before
jax is imported, hence the subprocess); each check prints ``PASS <name>`` or
raises.
"""

from __future__ import annotations

import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rmsnorm_core import RMSNormError, RMSNormSpec, assert_close, dtype_plan
from rmsnorm_flax import linen, rms_norm

assert jax.device_count() == 8, jax.devices()
MESH = Mesh(np.array(jax.devices()).reshape(2, 4), ("data", "model"))


def _problem(dtype, preset="llama"):
    spec = RMSNormSpec.preset(preset, param_dtype="float32")
    x = (jax.random.normal(jax.random.key(0), (16, 256)) * 3).astype(dtype)
    scale = jax.random.uniform(jax.random.key(1), (256,), minval=0.5, maxval=1.5)
    return spec, x, scale


def check_jit_named_sharding(dtype: str, layout: P) -> None:
    spec, x, scale = _problem(dtype)
    expected = jax.jit(lambda a, s: rms_norm(a, spec, s))(x, scale)
    xs = jax.device_put(x, NamedSharding(MESH, layout))
    got = jax.jit(lambda a, s: rms_norm(a, spec, s))(xs, scale)
    assert got.sharding.spec == layout or len(got.sharding.device_set) == 8
    key = dtype_plan(spec, dtype).precision
    assert_close(np.asarray(got), np.asarray(expected), key, name=f"jit {layout} {dtype}")


def _sharded_fn(spec):
    def local(a, s):
        return rms_norm(a, spec, s, axis_name="model")

    return jax.shard_map(
        local, mesh=MESH, in_specs=(P("data", "model"), P("model")), out_specs=P("data", "model")
    )


def check_shard_map_feature_axis(dtype: str, preset: str) -> None:
    spec, x, scale = _problem(dtype, preset)
    fn = _sharded_fn(spec)
    expected = jax.jit(lambda a, s: rms_norm(a, spec, s))(x, scale)
    got = jax.jit(fn)(x, scale)
    key = dtype_plan(spec, dtype).precision
    assert_close(np.asarray(got), np.asarray(expected), key, name=f"shard_map {dtype}")
    hlo = jax.jit(fn).lower(x, scale).compile().as_text()
    assert "all-gather" not in hlo, "x was gathered"
    assert "all-reduce" in hlo
    dy = jax.random.normal(jax.random.key(2), x.shape).astype(expected.dtype)
    g_sharded = jax.vjp(jax.jit(fn), x, scale)[1](dy)
    g_plain = jax.vjp(lambda a, s: rms_norm(a, spec, s), x, scale)[1](dy)
    for a, b in zip(g_sharded, g_plain, strict=True):
        assert_close(
            np.asarray(a),
            np.asarray(b),
            dtype_plan(spec, dtype).gradient_precision,
            gradient=True,
            name=f"shard_map grad {dtype}",
        )


def check_partial_refused() -> None:
    spec, x, scale = _problem("float32")
    try:
        jax.jit(_sharded_fn(spec.replace(partial=0.5)))(x, scale)
    except RMSNormError as err:
        assert "partial=0.5 with axis_name='model' is not supported" in str(err), err
    else:
        raise AssertionError("partial with axis_name was not refused")


def check_linen_module_in_shard_map() -> None:
    spec, x, scale = _problem("bfloat16", "flax")
    module = linen.RMSNorm(axis_name="model")
    params = {"params": {"scale": scale}}
    fn = jax.shard_map(
        lambda a, s: module.apply({"params": {"scale": s}}, a),
        mesh=MESH,
        in_specs=(P("data", "model"), P("model")),
        out_specs=P("data", "model"),
    )
    expected = linen.RMSNorm().apply(params, x)
    assert_close(
        np.asarray(jax.jit(fn)(x, scale)), np.asarray(expected), "bfloat16", name="linen shard_map"
    )


CHECKS = {
    **{
        f"jit-{d}-{name}": (lambda d=d, lay=lay: check_jit_named_sharding(d, lay))
        for d in ("float32", "bfloat16", "float16")
        for name, lay in (
            ("batch", P("data", None)),
            ("feature", P(None, "model")),
            ("both", P("data", "model")),
        )
    },
    **{
        f"shard_map-{d}-{p}": (lambda d=d, p=p: check_shard_map_feature_axis(d, p))
        for d in ("float32", "bfloat16", "float16")
        for p in ("llama", "gemma", "paper")
    },
    "partial-refused": check_partial_refused,
    "linen-shard_map": check_linen_module_in_shard_map,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or CHECKS:
        CHECKS[name]()
        print(f"PASS {name}", flush=True)
