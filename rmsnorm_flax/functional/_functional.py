"""The pure functions ``rms_norm`` and ``rms_norm_residual`` for JAX.

The formula and every precision rule are in ``rmsnorm_core.RMSNormSpec``.
Safe under ``jit``, ``grad``, ``vmap``, ``remat``, ``shard_map``, ``jvp`` and
``jacfwd``. Gradients are JAX's autodiff of the forward (``vjp="autodiff"``,
the default; for the ``flax`` preset, flax's own gradients bit for bit), or
the analytic VJP of ``_analytic.py`` (``vjp="analytic"``: see :func:`_apply`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.interpreters import ad

from rmsnorm_core import RMSNormError, RMSNormSpec, check_float_dtype, check_residual
from rmsnorm_flax.functional import _analytic, _kernel
from rmsnorm_flax.functional._call_plan import call_plan

#: The accepted values of ``vjp=``.
VJPS = ("autodiff", "analytic")


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


def _unbound_in_backward(axis_name: Any) -> bool:
    """Whether ``axis_name`` names an axis that is not a ``shard_map`` mesh axis (a ``vmap``
    or ``pmap`` axis): JAX runs a custom VJP's backward outside such an axis, where its
    all-reduce would fail ("unbound axis name")."""
    names = axis_name if isinstance(axis_name, tuple) else (axis_name,)
    manual = getattr(jax.sharding.get_abstract_mesh(), "manual_axes", ())
    return any(n not in manual for n in names)


def check_vjp(vjp: Any) -> str:
    """``vjp`` if it is one of :data:`VJPS`, else an error naming it."""
    if not isinstance(vjp, str) or vjp not in VJPS:
        raise RMSNormError(
            f"vjp={vjp!r} is not accepted; expected 'autodiff' (JAX differentiates the "
            "forward: flax's gradients for its preset) or 'analytic' (the hand-derived VJP "
            "that saves only the per-row statistic)"
        )
    return vjp


def _apply(x: jax.Array, cfg: _kernel.Plan, scale: Any, bias: Any, vjp: str) -> jax.Array:
    """Autodiff of the forward, or the analytic custom VJP where asked for and it can serve.

    The analytic VJP saves only the per-row statistic (no float32 copy of x); its
    sums run in another order than autodiff's, so its gradients may differ from
    the default's in the last bits. A spec that rounds ``h*inv`` before the scale
    (``cast_order="before_scale"``) always takes the analytic VJP: autodiff would
    differentiate that rounding as a step (zero where it flushes a subnormal), where
    the spec's gradient passes through it. Plain autodiff serves ``compute_dtype="input"``
    (naive code, op by op) and forward-mode differentiation, which a
    ``custom_vjp`` refuses, and an ``axis_name`` bound by ``vmap`` (not a ``shard_map``
    mesh axis: the custom backward would run where that axis is unbound): forward
    values are the same function either way. A
    function jitted *before* ``jax.jvp`` is applied to it (``jax.jvp(jax.jit(f))``)
    was traced without seeing the JVP, so with ``vjp="analytic"`` it keeps the
    custom VJP and JAX refuses the JVP: apply ``jit`` outside then.
    """
    autodiff = vjp == "autodiff" and cfg.plan.intermediate is None
    if (
        autodiff
        or cfg.plan.compute in ("float16", "bfloat16")
        or _forward_mode(x, scale, bias)
        or (cfg.axis_name is not None and _unbound_in_backward(cfg.axis_name))
    ):
        return _kernel.forward(x, scale, bias, cfg)[0]
    return _analytic.rms_norm_vjp(x, scale, bias, cfg)


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
    feature_axes: int | Sequence[int] | None = None,
    vjp: str = "autodiff",
) -> jax.Array:
    """RMSNorm of ``x`` under ``spec`` (formula: ``rmsnorm_core.RMSNormSpec``).

    Args:
        x: float16, bfloat16, float32 or float64 array of rank >= 1.
        spec: the spec.
        scale: array of ``rmsnorm_core.param_shape(spec, x.shape)`` (of x's sizes
            at ``feature_axes`` when given), or None for ``g = 1``. Only with
            ``spec.use_scale``.
        bias: same shape, or None. Only with ``spec.use_bias``.
        axis_name: inside ``shard_map`` with the normalized axis split across
            devices, the mesh axis name: the per-row statistic is all-reduced
            (one all-reduce of a per-row scalar; ``x`` is never gathered; for
            flax's order the ``pmean`` of the local mean squares, as flax).
            A ``vmap`` axis name joins the statistic across examples likewise;
            gradients are then autodiff's whatever ``vjp`` says (a custom VJP's
            backward runs where that axis is unbound). Partial statistics are
            refused with it.
        mask: booleans broadcastable to ``x``: the mean square is taken over the
            True elements of each block only (flax's ``mask=``; every element is
            still normalized). Not with a partial statistic or ``axis_name``;
            gradients are plain autodiff of the masked forward.
        dtype: the output's dtype instead of the spec's, rounded once from the
            computation (flax's ``dtype``); None keeps the spec's.
        feature_axes: the axes ``scale`` and ``bias`` span (flax's
            ``feature_axes``: any axes of ``x``, normalized or not; a repeated
            axis counts once), broadcast over the others; None (default): the
            spec's normalized axes.
        vjp: how reverse-mode gradients are computed. ``"autodiff"`` (default):
            JAX differentiates the forward; for the ``flax`` preset that forward
            is flax's own op sequence, so ``dx`` and ``dscale`` equal
            ``flax.linen.RMSNorm``'s / ``flax.nnx.RMSNorm``'s bit for bit.
            ``"analytic"``: the hand-derived VJP, which saves only the per-row
            float32 statistic (no float32 copy of ``x``); its gradients agree
            within the tolerance table but may differ in the last bits. Specs
            with ``cast_order="before_scale"`` always use it (autodiff would
            differentiate their mid-way rounding as a step).

    Returns:
        ``y`` with ``x``'s shape, in the plan's output dtype (or ``dtype``).

    Raises:
        rmsnorm_core.RMSNormError: bad axes, shapes, dtypes or arguments.
    """
    array = jnp.asarray(x)  # its dtype is checked with the rest of the plan, once
    check_vjp(vjp)
    cfg = call_plan(array, spec, scale, bias, axis_name, dtype, feature_axes)
    if mask is not None:
        return _kernel.forward(array, scale, bias, cfg, _mask(mask, array, cfg))[0]
    return _apply(array, cfg, scale, bias, vjp)


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
    feature_axes: int | Sequence[int] | None = None,
    vjp: str = "autodiff",
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
        feature_axes: as in :func:`rms_norm`.
        vjp: as in :func:`rms_norm`.

    Returns:
        ``(y, s)``.
    """
    array = _as_input(x)
    res = _as_input(residual, "residual")
    check_residual(res.shape, res.dtype, array.shape)
    check_vjp(vjp)
    cfg = call_plan(array, spec, scale, bias, axis_name, dtype, feature_axes)
    store = cfg.plan.residual
    wide = jnp.promote_types(jnp.promote_types(store, res.dtype), jnp.float32)
    exact = array.astype(wide) + res.astype(wide)
    # Round explicitly (see _kernel.round_to): XLA could otherwise feed the
    # unrounded sum to the norm while returning the rounded one. The norm then
    # takes s in its stored dtype, so its analytic VJP keeps s (bf16: half the
    # bytes of the float32 sum) and nothing wider.
    stored = _kernel.round_to(exact, store).astype(store)
    return _apply(stored, cfg, scale, bias, vjp), stored
