"""The Flax backend as core sees it: verify runners and msgpack params files.

Registered in ``pyproject.toml`` under ``rmsnorm_bridge.backends``; core finds
it through that entry point and never imports this package by name.
"""

from __future__ import annotations

from typing import Any

from rmsnorm_core import RMSNormUsageError
from rmsnorm_core.backends import Backend, CheckpointFormat, Runner, lazy
from rmsnorm_flax.interop._orbax import is_orbax
from rmsnorm_flax.plugins._benchmarks import benchmarks, sweeps
from rmsnorm_flax.plugins._benchmarks_gpu import gpu_benchmarks

_RUNNERS = "rmsnorm_flax.plugins._verify_runners"
_MSGPACK = "rmsnorm_flax.interop._msgpack"
_ORBAX = "rmsnorm_flax.interop._orbax"
OP_BY_OP = (
    "runs op by op, where flax-linen runs one jitted XLA fusion: their reductions round in"
    " other orders"
)
SHARDED = "a statistic reduced across processes sums in another order than one process"
XLA_SHAPES = (
    "XLA compiles a kernel per input shape and may reduce a row of a batch of 1 in another"
    " order; flax.linen.RMSNorm under jit differs the same way"
)


def _infer(obj: Any, shape: Any) -> Any:
    """``rmsnorm infer``: linen modules (initialized on a (2, *shape) input) and nnx modules."""
    import flax.linen as fnn
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from rmsnorm_flax.swap._infer import infer_spec

    if isinstance(obj, nnx.Module):
        return infer_spec(obj, normalized_shape=shape)
    if isinstance(obj, fnn.Module):
        if shape is None:
            raise RMSNormUsageError(
                "a linen module needs --shape (its parameters exist after init)"
            )
        variables = obj.init(jax.random.key(0), jnp.ones((2, *shape)))
        return infer_spec(obj, variables)
    if callable(obj) and not isinstance(obj, type) and shape is not None:
        try:  # a function of JAX arrays if a JAX array comes back
            out = obj(jnp.ones((2, *shape)))
        except Exception:
            return None
        return infer_spec(obj, normalized_shape=shape) if isinstance(out, jax.Array) else None
    return None


BACKEND = Backend(
    name="flax",
    requires=("jax", "flax"),
    runners=(
        Runner("flax-linen", lazy(_RUNNERS, "linen_run"), batch_variance=XLA_SHAPES,
               gradients=True),  # fmt: skip
        Runner("flax-nnx", lazy(_RUNNERS, "nnx_run"), batch_variance=XLA_SHAPES,
               bit_variance=OP_BY_OP, gradients=True),  # fmt: skip
        Runner.distributed_batch("jax-2procs", lazy(_RUNNERS, "distributed_batch"),
                                 batch_variance=XLA_SHAPES, bit_variance=SHARDED),  # fmt: skip
        Runner(
            "upstream-flax-linen",
            lazy("rmsnorm_flax.plugins._upstream", "flax_linen_run"),
            residual=False,
            upstream="flax",
            batch_variance=XLA_SHAPES,
        ),
    ),
    formats=(
        CheckpointFormat(
            "flax",
            (".msgpack",),
            "flax",
            lazy(_MSGPACK, "read_layers"),
            lazy(_MSGPACK, "save_msgpack"),
        ),
        CheckpointFormat(
            "orbax",
            (),
            "flax",
            lazy(_ORBAX, "read_layers"),
            lazy(_ORBAX, "save_orbax"),
            detect=is_orbax,
        ),
    ),
    benchmarks=benchmarks,
    sweeps=sweeps,
    gpu_benchmarks=gpu_benchmarks,
    infer=_infer,
)
