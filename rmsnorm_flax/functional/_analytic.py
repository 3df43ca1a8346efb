"""The analytic VJP (``vjp="analytic"``): saves only the float32 mean square per row
(not an fp32 copy of ``x``) and accumulates the scale gradient in float32::

    nh = h * inv,  gy = dy * g,  S = sum over the block of gy * nh
    dx = inv * gy - c * h * S * [j < k]   with c = inv^2 / k (eps inside)
                                               or inv / (k * rms) (eps outside; 0 where rms = 0)
    dscale = sum over the rest of dy * round(nh),   dbias = sum of dy

Exact arithmetic gives autodiff's gradients; in floating point the sums run in
another order, so the last bits may differ from the default (autodiff of
``_kernel.forward``, which for the ``flax`` preset is flax's own).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from rmsnorm_flax.functional._kernel import Plan, forward, gain, inverse_rms, round_to


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def rms_norm_vjp(
    x: jax.Array, scale: jax.Array | None, bias: jax.Array | None, cfg: Plan
) -> jax.Array:
    """:func:`_kernel.forward` with the analytic backward of the module docstring."""
    return forward(x, scale, bias, cfg)[0]


def _fwd(x, scale, bias, cfg):
    y, ms = forward(x, scale, bias, cfg)
    return y, (x, scale, bias, ms)


def _bwd(cfg, saved, dy):
    x, scale, bias, ms = saved
    plan = cfg.plan
    f = jnp.dtype(plan.compute)
    h = x.astype(f)
    d = dy.astype(f)
    inv = inverse_rms(ms, cfg)
    g = gain(scale, cfg)
    rounded = plan.intermediate is not None and scale is not None
    if _trailing(cfg) and cfg.param_dims == cfg.dims and not rounded:
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
        dbias = jnp.sum(d, axis=_unshared(cfg)).reshape(bias.shape).astype(bias.dtype)
    if dscale is not None:
        dscale = _match_vma(dscale.reshape(scale.shape).astype(scale.dtype), scale)
    if dbias is not None:
        dbias = _match_vma(dbias, bias)
    return dx, dscale, dbias


def _unshared(cfg: Plan) -> tuple[int, ...]:
    """The axes a parameter is broadcast over (its gradient is summed over them)."""
    return tuple(d for d in range(cfg.rank) if d not in cfg.param_dims)


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
    """Trailing block, parameters over it: both sums as matrix-vector products over
    p = dy * h (XLA on the CPU runs dots vectorized and multithreaded; its row and
    column reductions are slower there)."""
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
        dscale = jnp.sum(d * nh, axis=_unshared(cfg))
    return dot, dscale


def _partial_mask(h: jax.Array, cfg: Plan) -> jax.Array:
    """1 where an element enters the partial statistic, laid out like ``h``."""
    block = tuple(h.shape[d] for d in cfg.dims)
    flat = (jnp.arange(cfg.n) < cfg.k).astype(h.dtype).reshape(block)
    view = tuple(h.shape[d] if d in cfg.dims else 1 for d in range(h.ndim))
    return flat.reshape(view)


rms_norm_vjp.defvjp(_fwd, _bwd)
