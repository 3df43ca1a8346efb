"""The Flax backend as core sees it: verify runners and msgpack params files.

Registered in ``pyproject.toml`` under ``rmsnorm_bridge.backends``; core finds
it through that entry point and never imports this package by name.
"""

from __future__ import annotations

from typing import Any

from rmsnorm_core import RMSNormUsageError
from rmsnorm_core.backends import Backend, CheckpointFormat
from rmsnorm_flax.interop._msgpack import read_layers, save_msgpack
from rmsnorm_flax.interop._orbax import is_orbax, save_orbax
from rmsnorm_flax.interop._orbax import read_layers as read_orbax
from rmsnorm_flax.plugins._benchmarks import benchmarks, sweeps
from rmsnorm_flax.plugins._benchmarks_gpu import gpu_benchmarks
from rmsnorm_flax.plugins._verify_runners import runners


def _infer(obj: Any, shape: Any) -> Any:
    """``rmsnorm infer``: linen modules (initialized on a (2, *shape) input) and nnx modules."""
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from rmsnorm_flax.interop._infer import infer_spec

    if isinstance(obj, nnx.Module):
        return infer_spec(obj, normalized_shape=shape)
    if isinstance(obj, fnn.Module):
        if shape is None:
            raise RMSNormUsageError(
                "a linen module needs --shape (its parameters exist after init)"
            )
        variables = obj.init(jax.random.key(0), jnp.ones((2, *shape)))
        return infer_spec(obj, variables)
    return None


BACKEND = Backend(
    name="flax",
    runners=tuple(runners()),
    formats=(
        CheckpointFormat("flax", (".msgpack",), "flax", read_layers, save_msgpack),
        CheckpointFormat("orbax", (), "flax", read_orbax, save_orbax, detect=is_orbax),
    ),
    benchmarks=benchmarks,
    sweeps=sweeps,
    gpu_benchmarks=gpu_benchmarks,
    infer=_infer,
)
