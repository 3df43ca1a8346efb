"""Flax layer against flax.linen.RMSNorm: jit forward, and forward+backward.

Input [4096, 4096] on the CPU (issue #3's targets). Forward+backward is
``jax.vjp`` with a fixed cotangent (not through a loss, whose own cost would
hide the layer's), returning the input and scale cotangents.
"""

from __future__ import annotations

from ._harness import register

SIZE = 4096
DTYPES = ("float32", "bfloat16", "float16")


def _setup(dtype_name: str):
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    from rmsnorm_flax import linen

    dtype = jnp.dtype(dtype_name)
    x = jax.random.normal(jax.random.key(0), (SIZE, SIZE), jnp.float32).astype(dtype)
    ours, peer = linen.RMSNorm(), fnn.RMSNorm()
    params = peer.init(jax.random.key(1), x)
    return jax, jnp, x, ours, peer, params


def _register(dtype_name: str) -> None:
    @register(
        f"flax.linen.forward[{dtype_name}]",
        baseline="flax.linen.RMSNorm forward (jit)",
        target=1.0,
        requires=("jax", "flax"),
    )
    def _forward():
        jax, _, x, ours, peer, params = _setup(dtype_name)
        f_ours, f_peer = jax.jit(ours.apply), jax.jit(peer.apply)
        return (lambda: f_ours(params, x)), (lambda: f_peer(params, x))

    @register(
        f"flax.linen.forward+backward[{dtype_name}]",
        baseline="flax.linen.RMSNorm vjp (jit)",
        target=1.0,
        requires=("jax", "flax"),
    )
    def _vjp():
        jax, jnp, x, ours, peer, params = _setup(dtype_name)
        dy = jax.random.normal(jax.random.key(2), (SIZE, SIZE), jnp.float32)

        def grads(module):
            def run(p, xx, cot):
                y, pull = jax.vjp(module.apply, p, xx)
                return pull(cot.astype(y.dtype))

            return jax.jit(run)

        g_ours, g_peer = grads(ours), grads(peer)
        return (lambda: g_ours(params, x, dy)), (lambda: g_peer(params, x, dy))


for _name in DTYPES:
    _register(_name)


@register(
    "flax.forward-f16-vs-bf16[float16]",
    baseline="our bfloat16 forward (jit)",
    target=1.5,
    requires=("jax", "flax"),
)
def _f16_vs_bf16():
    jax, jnp, x, ours, _, params = _setup("float16")
    xb = x.astype(jnp.bfloat16)
    f = jax.jit(ours.apply)
    return (lambda: f(params, x)), (lambda: f(params, xb))
