"""pmap checks of ``test_flax_index_groups.py``, run in a subprocess with 8 simulated
CPU devices (XLA_FLAGS is set before jax is imported): with ``axis_index_groups``
(flax's ``lax.pmean`` over groups of devices) our linen and nnx layers give flax's
own ``y``, ``dx`` and ``dscale`` bit for bit, each device holding a slice of the
normalized axis; ``intercept_norms`` leaves such a flax layer to flax.
``pmap`` is where flax's own layer runs these: under ``vmap`` and ``shard_map`` jax
0.10 raises ``NotImplementedError`` for grouped collectives (checked here too, so
that a jax that lifts it shows up). Each check prints ``PASS <name>`` or raises.
"""

from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
from flax import nnx

from rmsnorm_flax import linen as ours_linen
from rmsnorm_flax import nnx as ours_nnx
from rmsnorm_flax.linen import intercept_norms

assert jax.device_count() == 8, jax.devices()
GROUPS = {
    "halves": [[0, 1, 2, 3], [4, 5, 6, 7]],
    "strided": [[0, 2, 4, 6], [1, 3, 5, 7]],
}
FEATURES = 16  # per device


def _inputs(dtype: str):
    kx, ks, kd = jax.random.split(jax.random.key(11), 3)
    x = (jax.random.normal(kx, (8, 3, FEATURES)) * 2).astype(dtype)
    scale = jax.random.uniform(ks, (8, FEATURES), minval=0.5, maxval=1.5)
    return x, scale, jax.random.normal(kd, (8, 3, FEATURES))


def _linen(cls, groups):
    def apply(x, scale):
        m = cls(axis_name="i", axis_index_groups=groups)
        return m.apply({"params": {"scale": scale}}, x)

    return apply


def _nnx(cls, groups):
    def apply(x, scale):
        layer = cls(FEATURES, axis_name="i", axis_index_groups=groups, rngs=nnx.Rngs(0))
        layer.scale[...] = scale
        return layer(x)

    return apply


def _grads(apply, dtype: str):
    """``(y, dx, dscale)`` of ``apply`` under ``pmap`` over the 8 devices."""

    def one(x, scale, dy):
        y, pull = jax.vjp(apply, x, scale)
        return (y, *pull(dy.astype(y.dtype)))

    return jax.pmap(one, axis_name="i")(*_inputs(dtype))


def _assert_equal(got, expected, name: str) -> None:
    for part, a, b in zip(("y", "dx", "dscale"), got, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, (name, part, a.dtype, b.dtype)
        assert bool(jnp.array_equal(a, b)), (
            f"{name} {part}: {int(jnp.sum(a != b))} of {a.size} elements differ"
        )


def check(api: str, groups: str, dtype: str) -> None:
    make = _linen if api == "linen" else _nnx
    pair = (ours_linen.RMSNorm, fnn.RMSNorm) if api == "linen" else (ours_nnx.RMSNorm, nnx.RMSNorm)
    ours, theirs = (_grads(make(cls, GROUPS[groups]), dtype) for cls in pair)
    _assert_equal(ours, theirs, f"{api}-{groups}-{dtype}")
    # the groups matter: without them the statistic spans all 8 devices
    whole = _grads(make(pair[1], None), dtype)
    assert not bool(jnp.array_equal(ours[0], whole[0])), "axis_index_groups changed nothing"


def check_intercept() -> None:
    apply = _linen(fnn.RMSNorm, GROUPS["halves"])
    want = _grads(apply, "float32")
    with intercept_norms():
        got = _grads(apply, "float32")
    _assert_equal(got, want, "intercept")


def check_vmap_refused_alike() -> None:
    x, scale, _ = _inputs("float32")
    for cls in (fnn.RMSNorm, ours_linen.RMSNorm):
        try:
            jax.vmap(_linen(cls, GROUPS["halves"]), axis_name="i")(x, scale)
        except NotImplementedError as err:
            assert "axis_index_groups" in str(err), err
        else:
            raise AssertionError(f"{cls.__module__}: vmap with axis_index_groups ran")


def main() -> None:
    for api in ("linen", "nnx"):
        for groups in GROUPS:
            for dtype in ("float32", "bfloat16"):
                check(api, groups, dtype)
                print(f"PASS {api}-{groups}-{dtype}", flush=True)
    check_intercept()
    print("PASS intercept", flush=True)
    check_vmap_refused_alike()
    print("PASS vmap-refused-alike", flush=True)


if __name__ == "__main__":
    main()
