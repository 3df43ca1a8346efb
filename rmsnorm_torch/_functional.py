"""The pure functions: ``rms_norm`` and ``rms_norm_residual``, TorchScript-ready.

The formula and every precision rule are in ``rmsnorm_core.RMSNormSpec``;
the keyword arguments here carry that spec's field names, so
``rms_norm(x, **spec_kwargs(spec), weight=w)`` runs a spec.

Two execution paths compute the same thing:

- eager, trailing contiguous block, eps inside, no partial: a row-blocked
  kernel (``_eager.py``) that keeps each block in cache and saves only the
  float32 inverse rms for backward;
- otherwise, and always under TorchScript, tracing, ``torch.compile``,
  ``torch.export`` and ONNX export: one graph of plain ops
  (``Cast -> Pow -> ReduceMean -> Add -> Sqrt -> Div -> Mul``), the pattern
  ONNX Runtime fuses.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core import RMSNormSpec

from . import _checks
from ._blocked import applies, blocked_forward, needs_grad
from ._graph import rms_norm_graph
from ._plan import compute_dtype_for, output_dtype_for


def spec_kwargs(spec: RMSNormSpec) -> Dict[str, Any]:
    """Return the keyword arguments of :func:`rms_norm` that carry ``spec``."""
    return {
        "axes": list(spec.axes),
        "eps": spec.eps,
        "eps_placement": spec.eps_placement,
        "compute_dtype": spec.compute_dtype,
        "cast_order": spec.cast_order,
        "output_dtype": spec.output_dtype,
        "scale_offset": spec.scale_offset,
        "partial": spec.partial,
    }


@torch.jit.unused
def _eager(
    x: Tensor,
    dims: List[int],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    eps_placement: str,
    compute: torch.dtype,
    before_scale: bool,
    out_dtype: torch.dtype,
    scale_offset: float,
    partial: float,
    in_dtype: torch.dtype,
) -> Optional[Tensor]:
    """Run the blocked kernel where it applies; while an ONNX export at opset >= 23
    traces, the native op where it equals the spec; otherwise None (graph path)."""
    if torch.compiler.is_compiling():
        from ._native import native_eligible, native_rms_norm

        if native_eligible(
            x,
            dims,
            weight,
            bias,
            eps_placement,
            compute,
            before_scale,
            scale_offset,
            partial,
            in_dtype,
        ):
            return native_rms_norm(x, dims, weight, eps)
        return None
    if torch.jit.is_tracing() or not applies(x, dims, eps_placement, compute, partial):
        return None
    from ._eager import blocked_rms_norm

    return blocked_rms_norm(
        x, len(dims), weight, bias, eps, scale_offset, before_scale, in_dtype, out_dtype
    )


def _norm(
    x: Tensor,
    axes: List[int],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    eps_placement: str,
    compute_dtype: str,
    cast_order: str,
    output_dtype: str,
    scale_offset: float,
    partial: float,
    in_dtype: torch.dtype,
) -> Tensor:
    _checks.check_options(eps, eps_placement, compute_dtype, cast_order, output_dtype, partial)
    _checks.check_float("x", x)
    dims = _checks.canonical_dims(axes, x.dim())
    if not torch.jit.is_tracing():  # a trace records ops, not these shape comparisons
        _checks.check_param("weight", weight, x, dims)
        _checks.check_param("bias", bias, x, dims)
    # the dtype plan, resolved once for every path below
    compute = compute_dtype_for(compute_dtype, in_dtype)
    out_dtype = output_dtype_for(output_dtype, in_dtype, weight, bias)
    before_scale = cast_order == "before_scale"
    if not torch.jit.is_scripting():
        fast = _eager(
            x,
            dims,
            weight,
            bias,
            eps,
            eps_placement,
            compute,
            before_scale,
            out_dtype,
            scale_offset,
            partial,
            in_dtype,
        )
        if fast is not None:
            return fast
    elif applies(x, dims, eps_placement, compute, partial) and not needs_grad(x, weight, bias):
        return blocked_forward(
            x, len(dims), weight, bias, eps, scale_offset, before_scale, in_dtype, out_dtype
        )[0]
    return rms_norm_graph(
        x,
        dims,
        weight,
        bias,
        eps,
        eps_placement == "outside",
        compute,
        before_scale,
        out_dtype,
        scale_offset,
        _partial_count(x, dims, partial),
        in_dtype,
    )


@torch.jit.unused
def _traced_partial_count(x: Tensor, dims: List[int], partial: float) -> int:
    """Under jit.trace the count is recorded as a constant of the traced block size
    (fixed by the normalized dims, which the weights fix); the tracer's warning
    about that is expected and silenced here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        n = 1
        for d in dims:
            n *= int(x.shape[d])
        return _checks.partial_count(partial, n)


def _partial_count(x: Tensor, dims: List[int], partial: float) -> int:
    """The partial count, or -1 for "the whole block" (no shape arithmetic to trace)."""
    if partial >= 1.0:
        return -1
    if not torch.jit.is_scripting():
        if torch.jit.is_tracing():
            return _traced_partial_count(x, dims, partial)
    n = 1
    for d in dims:
        n *= x.shape[d]
    return _checks.partial_count(partial, n)


def rms_norm(
    x: Tensor,
    axes: List[int],
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-6,
    eps_placement: str = "inside",
    compute_dtype: str = "float32",
    cast_order: str = "after_scale",
    output_dtype: str = "input",
    scale_offset: float = 0.0,
    partial: float = 1.0,
) -> Tensor:
    """RMSNorm of ``x`` over ``axes``, as ``rmsnorm_core.RMSNormSpec`` defines it.

    Args:
        x: float16, bfloat16, float32 or float64 tensor of rank >= 1.
        axes: normalized axes (any set; negative counts from the end).
        weight: the scale ``w`` (``g = scale_offset + w``, formed in float32),
            shaped as the normalized dims in increasing axis order; None for
            no scale.
        bias: added after the scale, same shape as ``weight``; None for none.
        eps, eps_placement, compute_dtype, cast_order, output_dtype,
            scale_offset, partial: the spec fields of the same names and
            defaults (see :func:`spec_kwargs`).

    Returns:
        ``y`` with ``x``'s shape; dtype per ``output_dtype``.

    Raises:
        rmsnorm_core.RMSNormError: bad axes, shapes, dtypes, devices or options
            (``torch.jit.Error`` with the same message when scripted).
    """
    return _norm(
        x,
        axes,
        weight,
        bias,
        eps,
        eps_placement,
        compute_dtype,
        cast_order,
        output_dtype,
        scale_offset,
        partial,
        x.dtype,
    )


def rms_norm_residual(
    x: Tensor,
    residual: Tensor,
    axes: List[int],
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-6,
    eps_placement: str = "inside",
    compute_dtype: str = "float32",
    cast_order: str = "after_scale",
    output_dtype: str = "input",
    scale_offset: float = 0.0,
    partial: float = 1.0,
    residual_dtype: str = "input",
) -> Tuple[Tensor, Tensor]:
    """``s = x + residual`` stored in ``residual_dtype``, then ``y = rms_norm(s)``.

    The dtype rules (cast before the scale, output dtype) refer to ``x``'s
    dtype, so with ``residual_dtype="float32"`` a bfloat16 ``x`` still gives a
    bfloat16 ``y`` while ``s`` keeps float32 (flash-attn's
    ``residual_in_fp32``).

    Returns:
        ``(y, s)``.
    """
    _checks.check_choice("residual_dtype", residual_dtype, ["input", "float32"])
    _checks.check_float("x", x)
    _checks.check_float("residual", residual)
    if not torch.jit.is_tracing() and list(residual.shape) != list(x.shape):
        _checks.fail(
            "residual has shape {}; expected the shape of x, {}".format(
                _checks.as_tuple(list(residual.shape)), _checks.as_tuple(list(x.shape))
            )
        )
    store = x.dtype
    if residual_dtype == "float32":
        store = torch.promote_types(x.dtype, torch.float32)
    wide = torch.promote_types(store, residual.dtype)
    s = torch.add(x.to(wide), residual.to(wide)).to(store)
    y = _norm(
        s,
        axes,
        weight,
        bias,
        eps,
        eps_placement,
        compute_dtype,
        cast_order,
        output_dtype,
        scale_offset,
        partial,
        x.dtype,
    )
    return y, s
