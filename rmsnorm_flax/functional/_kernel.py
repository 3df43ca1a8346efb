"""The JAX forward for a resolved configuration: core decides (axes, partial count,
dtype plan), this module maps that onto ``jnp``/``lax``.

Gradients are JAX's autodiff of :func:`forward` unless the caller asks for the
analytic VJP (``_analytic.py``). For ``scale_multiplies="inverse"`` (the
``flax`` preset) the forward is flax's ``_compute_stats`` + ``_normalize``
(Flax 0.12) op for op, so that autodiff gives flax's own gradients bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from rmsnorm_core import DtypePlan, RMSNormSpec


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything static about one call (hashable, so jit and custom_vjp can key on it):
    core's dtype plan and the call's geometry, the role torch's ``kernels._resolve.Plan`` has
    there (which maps the same ``DtypePlan`` onto torch dtypes for TorchScript)."""

    spec: RMSNormSpec
    dims: tuple[int, ...]  # canonical normalized axes
    rank: int
    n: int  # elements of one normalized block (the local shard under axis_name)
    k: int  # core's block_count: the partial count, -1 for the whole block
    plan: DtypePlan
    # the shape a parameter broadcasts as (its sizes at param_dims, 1 elsewhere);
    # a field, so that two configs for differently shaped parameters never compare equal
    param_view: tuple[int, ...]
    # the axes scale and bias span: the normalized dims, or flax's feature_axes
    param_dims: tuple[int, ...]
    axis_name: Any = None  # shard_map axis the normalized block is split over

    @property
    def batch_dims(self) -> tuple[int, ...]:
        return tuple(d for d in range(self.rank) if d not in self.dims)


def round_to(v: jax.Array, name: str | None) -> jax.Array:
    """Round ``v`` to dtype ``name``'s precision, keeping ``v``'s dtype.

    ``lax.reduce_precision`` rather than a pair of converts: XLA (with its
    default ``xla_allow_excess_precision``) may drop a convert pair, skipping
    a rounding the spec requires.
    """
    if name is None or jnp.dtype(name) == v.dtype:
        return v
    info = jnp.finfo(jnp.dtype(name))
    normal = lax.reduce_precision(v, exponent_bits=info.nexp, mantissa_bits=info.nmant)
    if info.smallest_subnormal < jnp.finfo(v.dtype).tiny:
        return normal  # bfloat16's subnormals are float32's, which XLA:CPU flushes anyway
    # reduce_precision flushes the target's subnormals to zero; a real cast keeps
    # them: round to a multiple of the smallest subnormal (ties to even).
    step = jnp.asarray(info.smallest_subnormal, v.dtype)
    subnormal = jnp.round(v / step) * step
    return jnp.where(jnp.abs(v) < jnp.asarray(info.tiny, v.dtype), subnormal, normal)


def _partial_view(h: jax.Array, cfg: Plan) -> jax.Array:
    """The first ``k`` elements of each flattened block, shape (batch..., k)."""
    order = cfg.batch_dims + cfg.dims
    moved = jnp.transpose(h, order) if order != tuple(range(h.ndim)) else h
    flat = moved.reshape(moved.shape[: len(cfg.batch_dims)] + (-1,))
    return flat[..., : cfg.k]


def _keepdims_shape(h: jax.Array, cfg: Plan) -> tuple[int, ...]:
    return tuple(1 if d in cfg.dims else h.shape[d] for d in range(h.ndim))


def sum_over_block(values: jax.Array, cfg: Plan) -> jax.Array:
    """The sum over the normalized block (keepdims), across devices under ``axis_name``."""
    total = jnp.sum(values, axis=cfg.dims, keepdims=True)
    return lax.psum(total, cfg.axis_name) if cfg.axis_name is not None else total


def mean_square(h: jax.Array, cfg: Plan, mask: jax.Array | None = None) -> jax.Array:
    """``mean(h*h)`` over the block (first k elements with partial), keepdims; with a
    ``mask`` (broadcastable to x), over its True elements only, as flax's.

    For flax's order (``scale_multiplies="inverse"``) and with a mask, the whole-block
    statistic is flax's ``mean(square(h))`` (under ``axis_name`` the ``pmean`` of the
    local means), so that autodiff of it is flax's; the other orders keep one division
    of the (all-reduced) sum of squares.
    """
    if mask is not None or (cfg.k < 0 and cfg.spec.scale_multiplies == "inverse"):
        ms = jnp.mean(lax.square(h), axis=cfg.dims, where=mask)
        if cfg.axis_name is not None:
            ms = lax.pmean(ms, cfg.axis_name)
        return jnp.expand_dims(ms, cfg.dims)
    if cfg.k < 0:
        count = cfg.n * (lax.psum(1, cfg.axis_name) if cfg.axis_name is not None else 1)
        return sum_over_block(h * h, cfg) / count
    part = _partial_view(h, cfg)
    ss = jnp.sum(part * part, axis=-1)
    return (ss / cfg.k).reshape(_keepdims_shape(h, cfg))


def inverse_rms(ms: jax.Array, cfg: Plan) -> jax.Array:
    """``rsqrt(ms + eps)``, or ``1 / (sqrt(ms) + eps)`` with a root whose gradient at 0
    is 0 (plain autodiff of ``sqrt`` would give NaN for zero rows)."""
    eps = jnp.asarray(cfg.spec.eps, ms.dtype)
    if cfg.spec.eps_placement == "inside":
        return lax.rsqrt(ms + eps)
    positive = ms > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, ms, jnp.ones_like(ms))), 0)
    return 1.0 / (root + eps)


def param(p: jax.Array | None, cfg: Plan, dtype: Any) -> jax.Array | None:
    """A parameter in ``dtype``, shaped to broadcast against ``x`` (``param_view``)."""
    if p is None:
        return None
    return p.astype(dtype).reshape(cfg.param_view)


def gain(scale: jax.Array | None, cfg: Plan) -> jax.Array | None:
    """``g = scale_offset + scale`` formed in the plan's scale dtype."""
    g = param(scale, cfg, jnp.dtype(cfg.plan.scale))
    if g is not None and cfg.spec.scale_offset != 0.0:
        g = g + jnp.asarray(cfg.spec.scale_offset, g.dtype)
    return g


def forward(
    x: jax.Array,
    scale: jax.Array | None,
    bias: jax.Array | None,
    cfg: Plan,
    mask: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Return ``(y, ms)``: the output and the compute-dtype mean square (keepdims);
    ``mask``: the statistic over its True elements (see :func:`mean_square`)."""
    plan = cfg.plan
    compute = jnp.dtype(plan.compute)
    h = x.astype(compute)
    ms = mean_square(h, cfg, mask)
    g = gain(scale, cfg)
    if cfg.spec.scale_multiplies == "inverse":  # flax's _normalize: y = x * (rsqrt * scale)
        mul = inverse_rms(ms, cfg)
        if g is not None:
            mul = mul * g
        # x cast again, apart from the statistic's cast, as flax's ``x - mean`` promotes
        # it: autodiff then rounds each path's dx to x's dtype and adds there, as flax's
        y = x.astype(compute) * mul
    else:
        y = round_to(h * inverse_rms(ms, cfg), plan.intermediate)
        if g is not None:
            y = y * g
    b = param(bias, cfg, jnp.dtype(plan.scale))
    if b is not None:
        y = y + b
    return y.astype(jnp.dtype(plan.output)), ms
