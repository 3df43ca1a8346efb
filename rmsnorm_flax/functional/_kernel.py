"""The JAX computation with its own VJP, for a resolved configuration.

Core decides (axes, partial count, dtype plan); this module maps that onto
``jnp``/``lax``. The backward pass saves only the float32 mean square per row
(not an fp32 copy of ``x``) and accumulates the scale gradient in float32::

    nh = h * inv,  gy = dy * g,  S = sum over the block of gy * nh
    dx = inv * gy - c * h * S * [j < k]   with c = inv^2 / k (eps inside)
                                               or inv / (k * rms) (eps outside; 0 where rms = 0)
    dscale = sum over the batch of dy * round(nh),   dbias = sum of dy
"""

from __future__ import annotations

import dataclasses
import functools
import math
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
    # the shape a parameter broadcasts as (its sizes at the normalized dims, 1 elsewhere);
    # a field, so that two configs for differently shaped blocks never compare equal
    param_view: tuple[int, ...]
    axis_name: Any = None  # shard_map axis the normalized block is split over

    @property
    def batch_dims(self) -> tuple[int, ...]:
        return tuple(d for d in range(self.rank) if d not in self.dims)


def _dtype(name: str | None) -> Any:
    return None if name is None else jnp.dtype(name)


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


def _sum_over_block(values: jax.Array, cfg: Plan) -> jax.Array:
    total = jnp.sum(values, axis=cfg.dims, keepdims=True)
    return lax.psum(total, cfg.axis_name) if cfg.axis_name is not None else total


def mean_square(h: jax.Array, cfg: Plan, mask: jax.Array | None = None) -> jax.Array:
    """``mean(h*h)`` over the block (first k elements with partial), keepdims; with a
    ``mask`` (broadcastable to x), over its True elements only, as flax's."""
    if mask is not None:  # flax's very ops (keepdims and a broadcast mask round otherwise)
        return jnp.expand_dims(jnp.mean(lax.square(h), axis=cfg.dims, where=mask), cfg.dims)
    if cfg.k < 0:
        ss = _sum_over_block(h * h, cfg)
        count = cfg.n * (lax.psum(1, cfg.axis_name) if cfg.axis_name is not None else 1)
        return ss / count
    part = _partial_view(h, cfg)
    ss = jnp.sum(part * part, axis=-1)
    return (ss / cfg.k).reshape(_keepdims_shape(h, cfg))


def inverse_rms(ms: jax.Array, cfg: Plan) -> jax.Array:
    """``rsqrt(ms + eps)``, or ``1 / (sqrt(ms) + eps)`` with a root whose gradient at 0
    is 0 (plain autodiff, ``compute_dtype="input"``, would give NaN for zero rows)."""
    eps = jnp.asarray(cfg.spec.eps, ms.dtype)
    if cfg.spec.eps_placement == "inside":
        return lax.rsqrt(ms + eps)
    positive = ms > 0
    root = jnp.where(positive, jnp.sqrt(jnp.where(positive, ms, jnp.ones_like(ms))), 0)
    return 1.0 / (root + eps)


def _param(p: jax.Array | None, cfg: Plan, dtype: Any) -> jax.Array | None:
    if p is None:
        return None
    return p.astype(dtype).reshape(cfg.param_view)


def gain(scale: jax.Array | None, cfg: Plan) -> jax.Array | None:
    """``g = scale_offset + scale`` formed in the plan's scale dtype."""
    g = _param(scale, cfg, jnp.dtype(cfg.plan.scale))
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
    h = x.astype(jnp.dtype(plan.compute))
    ms = mean_square(h, cfg, mask)
    g = gain(scale, cfg)
    if g is not None and cfg.spec.scale_multiplies == "inverse":
        y = h * (inverse_rms(ms, cfg) * g)  # flax's order (the spec allows no cast here)
    else:
        y = round_to(h * inverse_rms(ms, cfg), plan.intermediate)
        if g is not None:
            y = y * g
    b = _param(bias, cfg, jnp.dtype(plan.scale))
    if b is not None:
        y = y + b
    return y.astype(jnp.dtype(plan.output)), ms


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def rms_norm_vjp(
    x: jax.Array, scale: jax.Array | None, bias: jax.Array | None, cfg: Plan
) -> jax.Array:
    """:func:`forward` with the analytic backward of the module docstring."""
    return forward(x, scale, bias, cfg)[0]


def _fwd(x, scale, bias, cfg):
    y, ms = forward(x, scale, bias, cfg)
    return y, (x, scale, bias, ms)


def _bwd(cfg, saved, dy):
    x, scale, bias, ms = saved
    plan = cfg.plan
    f = _dtype(plan.compute)
    h = x.astype(f)
    d = dy.astype(f)
    inv = inverse_rms(ms, cfg)
    g = gain(scale, cfg)
    rounded = plan.intermediate is not None and scale is not None
    if _trailing(cfg) and not rounded:
        dot, dscale = _dots(h, d, g, inv, cfg)
    else:
        dot, dscale = _reductions(h, d, g, inv, cfg)
    count = cfg.n if cfg.k < 0 else cfg.k
    if cfg.axis_name is not None:  # the block spans the devices along axis_name
        dot = lax.psum(dot, cfg.axis_name)
        count = count * lax.psum(1, cfg.axis_name)
    # dot = sum over the block of gy * h; the statistic's term of dx is coef * h.
    s = dot * inv
    if cfg.spec.eps_placement == "inside":
        coef = inv * inv / count * s
    else:
        rms = jnp.sqrt(ms)
        coef = jnp.where(rms > 0, inv / (count * jnp.where(rms > 0, rms, 1.0)) * s, 0.0)
    if cfg.k >= 0:
        coef = coef * _partial_mask(h, cfg)
    gy = d if g is None else d * g
    dx = (inv * gy - coef * h).astype(x.dtype)
    dbias = None
    if bias is not None:
        dbias = jnp.sum(d, axis=cfg.batch_dims).reshape(bias.shape).astype(bias.dtype)
    if dscale is not None:
        dscale = _match_vma(dscale.reshape(scale.shape).astype(scale.dtype), scale)
    if dbias is not None:
        dbias = _match_vma(dbias, bias)
    return dx, dscale, dbias


def _varying(x: jax.Array) -> frozenset:
    """Mesh axes along which ``x`` varies inside shard_map (empty outside)."""
    aval = jax.typeof(x)
    axis_type = getattr(aval, "manual_axis_type", None)  # jax >= 0.10
    if axis_type is not None:
        return frozenset(axis_type.varying)
    return frozenset(getattr(aval, "vma", frozenset()))  # earlier jax


def _match_vma(grad: jax.Array, primal: jax.Array) -> jax.Array:
    """Inside shard_map, sum a parameter's gradient over the mesh axes along which
    the parameter is replicated but the batch is split (autodiff's pvary transpose)."""
    extra = _varying(grad) - _varying(primal)
    return lax.psum(grad, tuple(sorted(extra))) if extra else grad


def _trailing(cfg: Plan) -> bool:
    return cfg.dims == tuple(range(cfg.rank - len(cfg.dims), cfg.rank))


def _dots(h, d, g, inv, cfg):
    """Trailing block: both sums as matrix-vector products over p = dy * h.

    XLA on the CPU runs dots vectorized and multithreaded; its row and column
    reductions are slower (measured: fp32 0.82x, bf16 0.74x flax's autodiff,
    against 0.98x and 0.85x with reductions).
    """
    rows = math.prod(h.shape[: h.ndim - len(cfg.dims)])  # not -1: the block may be empty
    p = (d * h).reshape(rows, cfg.n)
    dot = p @ g.reshape(cfg.n) if g is not None else jnp.sum(p, axis=-1)
    dscale = inv.reshape(-1) @ p if g is not None else None
    return dot.reshape(inv.shape), dscale


def _reductions(h, d, g, inv, cfg):
    """Any axes: the same sums as reductions; dscale from the rounded normalized
    value where the spec rounds before the scale."""
    gy = d if g is None else d * g
    dot = jnp.sum(gy * h, axis=cfg.dims, keepdims=True)
    dscale = None
    if g is not None:
        nh = h * inv
        nh = round_to(nh, cfg.plan.intermediate)
        dscale = jnp.sum(d * nh, axis=cfg.batch_dims)
    return dot, dscale


def _partial_mask(h: jax.Array, cfg: Plan) -> jax.Array:
    """1 where an element enters the partial statistic, laid out like ``h``."""
    block = tuple(h.shape[d] for d in cfg.dims)
    flat = (jnp.arange(cfg.n) < cfg.k).astype(h.dtype).reshape(block)
    view = tuple(h.shape[d] if d in cfg.dims else 1 for d in range(h.ndim))
    return flat.reshape(view)


rms_norm_vjp.defvjp(_fwd, _bwd)
