"""The float64 NumPy oracle (public as :mod:`rmsnorm_core.reference`, whose docstring
says where it rounds and why its gradients do not)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rmsnorm_core.spec._dtypes import check_float_dtype, numpy_dtype
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._plan import (
    DtypePlan,
    canonical_axes,
    check_params,
    check_residual,
    dtype_plan,
    param_shape,
)
from rmsnorm_core.spec._rules import partial_count
from rmsnorm_core.spec._spec import RMSNormSpec


def _round(values: np.ndarray, name: str | None) -> np.ndarray:
    """Round float64 ``values`` to dtype ``name`` and back (None: no rounding)."""
    if name is None or name == "float64":
        return values
    return values.astype(numpy_dtype(name)).astype(np.float64)


class _Blocks:
    """``x`` viewed as (batch..., n): normalized axes moved last and flattened."""

    def __init__(self, shape: tuple[int, ...], spec: RMSNormSpec) -> None:
        self.shape = shape
        self.axes = canonical_axes(spec.axes, len(shape))
        kept = [a for a in range(len(shape)) if a not in self.axes]
        self.perm = kept + list(self.axes)
        self.inverse = list(np.argsort(self.perm))
        self.batch_shape = tuple(shape[a] for a in kept)
        self.pshape = param_shape(spec, shape)
        self.n = int(np.prod(self.pshape, dtype=np.int64))
        self.k = partial_count(spec.partial, self.n)

    def split(self, array: np.ndarray) -> np.ndarray:
        moved = np.transpose(array, self.perm)
        return moved.reshape(self.batch_shape + (self.n,))

    def join(self, blocks: np.ndarray) -> np.ndarray:
        return np.transpose(blocks.reshape(self.batch_shape + self.pshape), self.inverse)


def _as_input(x: Any) -> np.ndarray:
    array = np.asarray(x)
    check_float_dtype("x", array.dtype)
    if array.ndim == 0:
        canonical_axes((-1,), 0)  # raises the rank-0 error
    return array


def _params(
    spec: RMSNormSpec, blocks: _Blocks, scale: Any, bias: Any
) -> tuple[np.ndarray | None, np.ndarray | None, str | None]:
    """Validate ``scale``/``bias``; return them flat (float64) and their dtype."""
    arrays = [None if v is None else np.asarray(v) for v in (scale, bias)]
    param_dtype = check_params(spec, blocks.shape, *arrays)
    flat = [None if a is None else a.astype(np.float64).reshape(blocks.n) for a in arrays]
    return flat[0], flat[1], param_dtype


def _normalize(
    h: np.ndarray,
    spec: RMSNormSpec,
    plan: DtypePlan,
    blocks: _Blocks,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
) -> np.ndarray:
    """Apply the spec to float64 blocks ``h`` of shape (batch..., n)."""
    step = plan.compute if plan.compute in ("float16", "bfloat16") else None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        squares = _round(h[..., : blocks.k] ** 2, step)
        # The sum of squares is held in the compute dtype: a float32 statistic
        # overflows when it passes 3.4e38 (|x| >~ 1.8e19), as every backend's does;
        # ms is then inf, inv 0, and the row's finite elements give 0.
        ss = _round(squares.sum(axis=-1, keepdims=True), plan.compute)
        ms = _round(ss / max(blocks.k, 1), step)
        if spec.eps_placement == "inside":
            inv = _round(1.0 / _round(np.sqrt(_round(ms + spec.eps, step)), step), step)
        else:
            inv = _round(1.0 / _round(np.sqrt(ms) + spec.eps, step), step)
        y = _round(_round(h * inv, step), plan.intermediate)
        if scale is not None:
            y = _round(y * _round(scale + spec.scale_offset, plan.scale), step)
        if bias is not None:
            y = y + bias
    return _round(y, plan.output).astype(numpy_dtype(plan.output))


def rms_norm(
    x: Any, spec: RMSNormSpec, scale: Any | None = None, bias: Any | None = None
) -> np.ndarray:
    """Reference RMSNorm of ``x`` under ``spec`` (formula: :class:`RMSNormSpec`).

    Args:
        x: float16, bfloat16 (ml_dtypes), float32 or float64 array of rank >= 1.
        spec: the spec.
        scale: array of :func:`param_shape`, or None for the layer at
            initialization (``g = 1``). Only with ``spec.use_scale``.
        bias: array of :func:`param_shape`, or None for zero. Only with
            ``spec.use_bias``.

    Returns:
        ``y`` with ``x``'s shape and the plan's output dtype.

    Raises:
        RMSNormError: bad axes, shapes or dtypes, or a parameter the spec
            does not use.
    """
    array = _as_input(x)
    blocks = _Blocks(array.shape, spec)
    scale64, bias64, par = _params(spec, blocks, scale, bias)
    plan = dtype_plan(spec, array.dtype, par)
    h = blocks.split(array.astype(np.float64))
    return blocks.join(_normalize(h, spec, plan, blocks, scale64, bias64))


def rms_norm_residual(
    x: Any,
    residual: Any,
    spec: RMSNormSpec,
    scale: Any | None = None,
    bias: Any | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Reference residual RMSNorm: ``s = x + residual``, then ``y = norm(s)``.

    ``s`` is rounded to the plan's residual dtype and the norm is computed
    from that stored ``s`` with ``x``'s dtype rules, so the fused result
    equals adding, storing and normalizing separately.

    Args:
        x: as in :func:`rms_norm`.
        residual: array of ``x``'s shape; any float dtype.
        spec: as in :func:`rms_norm`.
        scale: as in :func:`rms_norm`.
        bias: as in :func:`rms_norm`.

    Returns:
        ``(y, s)``.
    """
    array = _as_input(x)
    res = np.asarray(residual)
    check_residual(res.shape, res.dtype, array.shape)
    blocks = _Blocks(array.shape, spec)
    scale64, bias64, par = _params(spec, blocks, scale, bias)
    plan = dtype_plan(spec, array.dtype, par)
    summed = array.astype(np.float64) + res.astype(np.float64)
    stored = summed.astype(numpy_dtype(plan.residual))
    h = blocks.split(stored.astype(np.float64))
    y = blocks.join(_normalize(h, spec, plan, blocks, scale64, bias64))
    return y, stored


def rms_norm_vjp(
    x: Any,
    dy: Any,
    spec: RMSNormSpec,
    scale: Any | None = None,
    bias: Any | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Exact float64 gradients of :func:`rms_norm` for the cotangent ``dy``.

    With ``r = inv`` and ``gy = dy * g`` per block::

        dx_j = r * gy_j + dinv/dms * (2 h_j / k) [j < k] * sum_i gy_i h_i
        dscale = sum over the batch of dy * h * r,   dbias = sum of dy

    where ``dinv/dms = -r^3 / 2`` (eps inside) or ``-r^2 / (2 sqrt(ms))``
    (eps outside; taken as 0 where ``ms == 0``, so all-zero rows have finite
    gradients).

    Returns:
        ``(dx, dscale, dbias)`` as float64 arrays; ``dscale`` is None without
        a scale, ``dbias`` None without a bias.
    """
    array = _as_input(x)
    cot = np.asarray(dy, dtype=np.float64)
    if cot.shape != array.shape:
        raise RMSNormError(f"dy has shape {cot.shape}; expected the shape of x, {array.shape}")
    blocks = _Blocks(array.shape, spec)
    scale64, _, _ = _params(spec, blocks, scale, bias)
    h = blocks.split(array.astype(np.float64))
    d = blocks.split(cot)
    plan = dtype_plan(spec, array.dtype)
    g = np.ones(blocks.n) if scale64 is None else _round(scale64 + spec.scale_offset, plan.scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        ms = (h[..., : blocks.k] ** 2).sum(axis=-1, keepdims=True) / max(blocks.k, 1)
        if spec.eps_placement == "inside":
            inv = 1.0 / np.sqrt(ms + spec.eps)
            dinv_dms = -0.5 * inv**3
        else:
            root = np.sqrt(ms)
            inv = 1.0 / (root + spec.eps)
            dinv_dms = np.where(ms > 0, -0.5 * inv**2 / np.where(ms > 0, root, 1.0), 0.0)
    gy = d * g
    mask = np.arange(blocks.n) < blocks.k
    dot = (gy * h).sum(axis=-1, keepdims=True)
    dx = inv * gy + dinv_dms * (2.0 * h * mask / max(blocks.k, 1)) * dot
    batch_axes = tuple(range(len(blocks.batch_shape)))
    # before_scale: y = round(round(h*inv) * g), so dy/dg is the rounded normalized value.
    normalized = _round(h * inv, plan.intermediate)
    dscale = None
    if spec.use_scale:
        dscale = (d * normalized).sum(axis=batch_axes).reshape(blocks.pshape)
    dbias = d.sum(axis=batch_axes).reshape(blocks.pshape) if spec.use_bias else None
    return blocks.join(dx), dscale, dbias


__all__ = ["rms_norm", "rms_norm_residual", "rms_norm_vjp"]
