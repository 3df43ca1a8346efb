"""The Flax cases of ``rmsnorm bench``: against flax.linen.RMSNorm under jit.

Input [4096, 4096] on the CPU. Forward+backward is ``jax.vjp`` with a fixed
cotangent (not through a loss, whose own cost would hide the layer's),
returning the input and scale cotangents: ours with the default
``vjp="autodiff"`` (flax's gradients bit for bit) and with ``vjp="analytic"``.
"""

from __future__ import annotations

from typing import Any

from rmsnorm_core import RMSNormSpec
from rmsnorm_core.backends import Benchmark, Sweep

SIZE = 4096
DTYPES = ("float32", "bfloat16", "float16")
REQUIRES = ("jax", "flax")


def _setup(dtype_name: str, rows: int = SIZE, cols: int = SIZE, vjp: str = "autodiff") -> Any:
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp

    from rmsnorm_flax import linen

    dtype = jnp.dtype(dtype_name)
    x = jax.random.normal(jax.random.key(0), (rows, cols), jnp.float32).astype(dtype)
    ours, peer = linen.RMSNorm(vjp=vjp), fnn.RMSNorm()
    params = peer.init(jax.random.key(1), x)
    return jax, jnp, x, ours, peer, params


def _vjp(jax: Any, fn: Any) -> Any:
    def run(*args: Any) -> Any:
        *primal, cot = args
        y, pull = jax.vjp(fn, *primal)
        return pull(jax.tree.map(lambda c, t: c.astype(t.dtype), cot, y))

    return jax.jit(run)


def _cases(dtype: str) -> list[Benchmark]:
    def forward() -> Any:
        jax, _, x, ours, peer, params = _setup(dtype)
        f_ours, f_peer = jax.jit(ours.apply), jax.jit(peer.apply)
        return (lambda: f_ours(params, x)), (lambda: f_peer(params, x))

    def fwd_bwd(vjp: str = "autodiff") -> Any:
        jax, jnp, x, ours, peer, params = _setup(dtype, vjp=vjp)
        dy = jax.random.normal(jax.random.key(2), x.shape, jnp.float32)
        g_ours, g_peer = _vjp(jax, ours.apply), _vjp(jax, peer.apply)
        return (lambda: g_ours(params, x, dy)), (lambda: g_peer(params, x, dy))

    return [
        Benchmark(
            f"flax.linen.forward[{dtype}]",
            "flax.linen.RMSNorm forward (jit)",
            forward,
            1.0,
            REQUIRES,
        ),
        Benchmark(
            f"flax.linen.forward+backward[{dtype}]",
            "flax.linen.RMSNorm vjp (jit)",
            fwd_bwd,
            0.75 if dtype == "float32" else 1.0,
            REQUIRES,
        ),  # fmt: skip
        Benchmark(
            f"flax.linen.forward+backward-analytic[{dtype}]",
            "flax.linen.RMSNorm vjp (jit); ours with vjp='analytic'",
            lambda: fwd_bwd("analytic"),
            0.75 if dtype == "float32" else 1.0,
            REQUIRES,
        ),
    ]


def _residual(dtype: str) -> Benchmark:
    def setup() -> Any:
        jax, jnp, x, _, peer, params = _setup(dtype)
        from rmsnorm_flax.functional._functional import rms_norm_residual

        spec = RMSNormSpec.preset("flax")
        r = jax.random.normal(jax.random.key(3), x.shape, jnp.float32).astype(x.dtype)
        dy = jax.random.normal(jax.random.key(2), x.shape, jnp.float32)
        scale = params["params"]["scale"]
        ours = _vjp(jax, lambda a, b, s: rms_norm_residual(a, b, spec, s)[0])
        peer_fn = _vjp(jax, lambda a, b, s: peer.apply({"params": {"scale": s}}, a + b))
        return (lambda: ours(x, r, scale, dy)), (lambda: peer_fn(x, r, scale, dy))

    name = f"flax.residual.forward+backward[{dtype}]"
    return Benchmark(name, "x + r, then flax.linen.RMSNorm (vjp, jit)", setup, 0.8, REQUIRES)


def _f16_vs_bf16() -> Benchmark:
    def setup() -> Any:
        jax, jnp, x, ours, _, params = _setup("float16")
        xb = x.astype(jnp.bfloat16)
        f = jax.jit(ours.apply)
        return (lambda: f(params, x)), (lambda: f(params, xb))

    return Benchmark(
        "flax.forward-f16-vs-bf16[float16]", "our bfloat16 forward (jit)", setup, 1.5, REQUIRES
    )


def benchmarks() -> list[Benchmark]:
    out = [b for d in DTYPES for b in _cases(d)]
    return out + [_residual(d) for d in ("float32", "bfloat16")] + [_f16_vs_bf16()]


def sweeps() -> list[Sweep]:
    """Our linen forward and flax.linen.RMSNorm's (jit) at row lengths 64 to 65536."""

    def setup(rows: int, cols: int, dtype: str) -> Any:
        jax, _, x, ours, peer, params = _setup(dtype, rows, cols)
        f_ours, f_peer = jax.jit(ours.apply), jax.jit(peer.apply)
        return (lambda: f_ours(params, x)), (lambda: f_peer(params, x))

    return [Sweep("flax.linen.forward", "flax.linen.RMSNorm", setup, REQUIRES)]
