"""The pure functions ``rms_norm`` and ``rms_norm_residual`` for JAX.

The formula and every precision rule are in ``rmsnorm_core.RMSNormSpec``.
Safe under ``jit``, ``grad``, ``vmap``, ``remat``, ``jvp`` and ``jacfwd``;
reverse-mode gradients come from the analytic VJP in ``_kernel.py`` (plain
autodiff for ``compute_dtype="input"``, which reproduces naive low-precision
code op by op, and for forward mode: see :func:`_apply`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.interpreters import ad

from rmsnorm_core import (
    RMSNormError,
    RMSNormSpec,
    RMSNormTypeError,
    canonical_axes,
    check_float_dtype,
    check_params,
    check_residual,
    dtype_plan,
    param_shape,
)
from rmsnorm_core.rules import block_count
from rmsnorm_flax.functional import _kernel


def _call_plan(
    x: jax.Array,
    spec: RMSNormSpec,
    scale: Any,
    bias: Any,
    axis_name: Any,
    in_dtype: str,
    dtype: Any | None = None,
) -> _kernel.Plan:
    """The call's plan, resolved once per spec, shapes and dtypes (a pure function of
    hashable values, memoized: an eager nnx call then costs a dictionary lookup);
    ``dtype``: flax's output dtype, or None for the spec's."""
    out_dtype = None if dtype is None else jnp.dtype(dtype).name
    if not isinstance(spec, RMSNormSpec):
        raise RMSNormTypeError(f"spec must be an RMSNormSpec, got {type(spec).__name__}")
    params = (_describe(scale), _describe(bias))
    try:
        return _resolved(spec, tuple(x.shape), in_dtype, params, axis_name, out_dtype)
    except TypeError:  # an unhashable axis_name: resolve without the memo
        return _resolved.__wrapped__(spec, tuple(x.shape), in_dtype, params, axis_name, out_dtype)


@functools.lru_cache(maxsize=1024)
def _resolved(
    spec: RMSNormSpec,
    shape: tuple,
    in_dtype: str,
    params: tuple,
    axis_name: Any,
    out_dtype: str | None = None,
) -> _kernel.Plan:
    dims = canonical_axes(spec.axes, len(shape))
    pshape = param_shape(spec, shape)
    arrays = [None if p is None else _Described(*p) for p in params]
    param_dtype = check_params(spec, shape, *arrays)
    n = math.prod(pshape)
    if axis_name is not None and spec.partial < 1.0:
        raise RMSNormError(
            f"partial={spec.partial} with axis_name={axis_name!r} is not supported: the first "
            "k elements of a block sharded across devices are not local; use partial=1.0 or "
            "gather the normalized axis"
        )
    plan = dtype_plan(spec, in_dtype, param_dtype)
    if out_dtype is not None:  # flax's dtype: the output rounded once, to it
        plan = plan._replace(output=out_dtype)
    view = tuple(shape[d] if d in dims else 1 for d in range(len(shape)))
    k = block_count(spec.partial, n)  # -1: the whole block (core's one convention)
    return _kernel.Plan(spec, dims, len(shape), n, k, plan, view, axis_name)


def _describe(p: Any) -> tuple | None:
    if p is None:
        return None
    # jnp.result_type reads the dtype of arrays and of scalars/lists alike
    a = p if isinstance(p, jax.Array) else jnp.asarray(p)
    return (a.shape, a.dtype.name)


class _Described(NamedTuple):
    """A parameter as core's checks read it: its shape and dtype (no array kept)."""

    shape: tuple
    dtype: str


def _forward_mode(*arrays: Any) -> bool:
    """Whether an input is being differentiated in forward mode (a JVP tracer at any
    depth of the tracer nesting: ``jax.jvp``, ``jacfwd``, ``hessian``)."""
    for a in arrays:
        for _ in range(16):  # tracers nest a few levels deep at most
            if not isinstance(a, jax.core.Tracer):
                break
            if isinstance(a, ad.JVPTracer):
                return True
            a = getattr(a, "primal", getattr(a, "val", None))
    return False


def _apply(x: jax.Array, cfg: _kernel.Plan, scale: Any, bias: Any) -> jax.Array:
    """The analytic custom VJP (reverse mode: saves only the per-row statistic), or plain
    autodiff of the same forward where that rule cannot serve.

    Plain: ``compute_dtype="input"`` (naive code, op by op), and forward-mode
    differentiation, which a ``custom_vjp`` refuses: forward values are the same
    function either way. A function jitted *before* ``jax.jvp`` is applied to it
    (``jax.jvp(jax.jit(f))``) was traced without seeing the JVP, so it keeps the
    custom VJP and JAX refuses the JVP: apply ``jit`` outside (``jax.jit(jax.jvp(...))``).
    """
    if cfg.plan.compute in ("float16", "bfloat16") or _forward_mode(x, scale, bias):
        return _kernel.forward(x, scale, bias, cfg)[0]
    return _kernel.rms_norm_vjp(x, scale, bias, cfg)


def _as_input(x: Any, name: str = "x") -> jax.Array:
    array = jnp.asarray(x)
    check_float_dtype(name, array.dtype)
    return array


def rms_norm(
    x: Any,
    spec: RMSNormSpec,
    scale: Any | None = None,
    bias: Any | None = None,
    *,
    axis_name: Any = None,
    mask: Any | None = None,
    dtype: Any | None = None,
) -> jax.Array:
    """RMSNorm of ``x`` under ``spec`` (formula: ``rmsnorm_core.RMSNormSpec``).

    Args:
        x: float16, bfloat16, float32 or float64 array of rank >= 1.
        spec: the spec.
        scale: array of ``rmsnorm_core.param_shape(spec, x.shape)``, or None for
            ``g = 1``. Only with ``spec.use_scale``.
        bias: same shape, or None. Only with ``spec.use_bias``.
        axis_name: inside ``shard_map`` with the normalized axis split across
            devices, the mesh axis name: the local sum of squares is
            ``psum``-ed (one all-reduce of a per-row scalar; ``x`` is never
            gathered). Partial statistics are refused then.
        mask: booleans broadcastable to ``x``: the mean square is taken over the
            True elements of each block only (flax's ``mask=``; every element is
            still normalized). Not with a partial statistic or ``axis_name``;
            gradients are plain autodiff of the masked forward.
        dtype: the output's dtype instead of the spec's, rounded once from the
            computation (flax's ``dtype``); None keeps the spec's.

    Returns:
        ``y`` with ``x``'s shape, in the plan's output dtype (or ``dtype``).

    Raises:
        rmsnorm_core.RMSNormError: bad axes, shapes, dtypes or arguments.
    """
    array = jnp.asarray(x)  # its dtype is checked with the rest of the plan, once
    cfg = _call_plan(array, spec, scale, bias, axis_name, array.dtype.name, dtype)
    if mask is not None:
        return _kernel.forward(array, scale, bias, cfg, _mask(mask, array, cfg))[0]
    return _apply(array, cfg, scale, bias)


def _mask(mask: Any, x: jax.Array, cfg: _kernel.Plan) -> jax.Array:
    """``mask`` as booleans broadcastable to ``x`` (left unbroadcast, as flax leaves
    it), or an error naming what does not fit."""
    if cfg.k >= 0 or cfg.axis_name is not None:
        raise RMSNormError(
            f"mask= with partial={cfg.spec.partial} or axis_name={cfg.axis_name!r} is not "
            "supported: a masked statistic is over the whole local block; use partial=1.0 "
            "and no axis_name"
        )
    m = jnp.asarray(mask, dtype=bool)
    try:
        if jnp.broadcast_shapes(m.shape, x.shape) != x.shape:
            raise ValueError
        return m
    except ValueError:
        raise RMSNormError(
            f"mask has shape {tuple(m.shape)}, which does not broadcast to x's {tuple(x.shape)}"
        ) from None


def rms_norm_residual(
    x: Any,
    residual: Any,
    spec: RMSNormSpec,
    scale: Any | None = None,
    bias: Any | None = None,
    *,
    axis_name: Any = None,
    dtype: Any | None = None,
) -> tuple[jax.Array, jax.Array]:
    """``s = x + residual`` stored in the plan's residual dtype; ``y = rms_norm(s)``.

    The dtype rules refer to ``x``'s dtype (see ``RMSNormSpec``); fused equals
    unfused because ``y`` is computed from the stored ``s``.

    Args:
        x: as in :func:`rms_norm`.
        residual: same shape as ``x``, any floating dtype.
        spec: the spec.
        scale: as in :func:`rms_norm`.
        bias: as in :func:`rms_norm`.
        axis_name: as in :func:`rms_norm`.
        dtype: ``y``'s dtype instead of the spec's, as in :func:`rms_norm` (one
            rounding); ``s`` keeps the residual dtype.

    Returns:
        ``(y, s)``.
    """
    array = _as_input(x)
    res = _as_input(residual, "residual")
    check_residual(res.shape, res.dtype, array.shape)
    cfg = _call_plan(array, spec, scale, bias, axis_name, array.dtype.name, dtype)
    store = cfg.plan.residual
    wide = jnp.promote_types(jnp.promote_types(store, res.dtype), jnp.float32)
    exact = array.astype(wide) + res.astype(wide)
    # Round explicitly (see _kernel.round_to): XLA could otherwise feed the
    # unrounded sum to the norm while returning the rounded one. The norm then
    # takes s in its stored dtype, so its VJP keeps s (bf16: half the bytes of
    # the float32 sum it kept before) and nothing wider.
    stored = _kernel.round_to(exact, store).astype(store)
    return _apply(stored, cfg, scale, bias), stored
