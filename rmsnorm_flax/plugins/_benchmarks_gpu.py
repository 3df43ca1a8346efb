"""The Flax cases of ``rmsnorm bench --gpu`` (``rmsnorm_core.bench._bench_gpu``).

Our linen layer against ``flax.linen.RMSNorm`` (the peer), both under
``jax.jit``: forward, and forward+backward (``jax.vjp`` for ``x`` and the
params with a fixed ``dy``). XLA fuses each into its own kernels; these rows
show whether anything in our layer (the explicit rounding helpers, the
float32 scale) costs bandwidth there. Without a GPU only ``--smoke`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rmsnorm_core.backends import GpuCase, Timed, Unavailable, gpu_groups


def _setup(peer: bool, rows: int, cols: int, dtype: str, smoke: bool, backward: bool) -> Any:
    def setup() -> Timed:
        import flax.linen as nn
        import jax
        import jax.numpy as jnp

        from rmsnorm_flax.linen import RMSNorm

        device = jax.devices()[0]
        if device.platform != "gpu" and not smoke:
            raise Unavailable(f"jax runs on {device.platform} (--smoke runs the harness there)")
        dt = getattr(jnp, dtype)
        x = jax.random.normal(jax.random.key(0), (rows, cols), dt)
        layer = nn.RMSNorm(dtype=dt) if peer else RMSNorm(dtype=dt)
        params = layer.init(jax.random.key(1), x)
        if backward:
            dy = jax.random.normal(jax.random.key(2), (rows, cols), dt)

            def step(p: Any, t: Any) -> Any:
                return jax.vjp(layer.apply, p, t)[1](dy)

            fn = jax.jit(step)
        else:
            fn = jax.jit(layer.apply)
        state: dict[str, Any] = {}

        def run() -> None:
            state["out"] = fn(params, x)

        return Timed(run, lambda: jax.block_until_ready(state.get("out")), device.device_kind)

    return setup


def gpu_benchmarks(
    shapes: Sequence[tuple[int, int]], dtypes: Sequence[str], smoke: bool
) -> list[GpuCase]:
    """Ours and flax's at every shape, dtype and direction (module docstring)."""
    cases = []
    for g in gpu_groups("flax", shapes, dtypes):
        for name, peer in (("ours (linen, jit)", False), ("flax.linen.RMSNorm", True)):
            setup = _setup(peer, g.rows, g.cols, g.dtype, smoke, g.backward)
            cases.append(GpuCase(g.name, name, g.nbytes, setup, peer, ("jax", "flax")))
    return cases
