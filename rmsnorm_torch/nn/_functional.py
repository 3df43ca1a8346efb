"""The pure functions: ``rms_norm`` and ``rms_norm_residual``, and their TorchScript cores.

The formula and every precision rule are in ``rmsnorm_core.RMSNormSpec``.
The public functions take the spec itself; the modules and scripted code
call :func:`norm` / :func:`norm_residual` with the spec compiled once into a
``Recipe`` (``spec.recipe``), so nothing is copied field by field.

Execution paths compute the same thing, chosen from the input and the plan
alone, or forced for the calling thread by ``use_kernel`` (``_kernel_choice.py``):

- eager, plain CUDA tensor, trailing contiguous block, ``triton`` installed:
  the Triton kernels (``_triton_kernels.py``), forward, backward and the
  residual variant fused;
- eager or scripted, CPU tensor, below ``_fused.limit()`` elements, where
  ``torch.rms_norm`` computes the spec exactly (``_fused.py``): that one op;
- eager, plain CPU tensor, trailing contiguous block, eps inside, no
  partial: a row-blocked kernel that keeps each block in cache and saves
  only the float32 inverse rms for backward;
- otherwise, and always under TorchScript, tracing, ``torch.compile``,
  ``torch.export`` and ONNX export: one graph of plain ops
  (``Cast -> Pow -> ReduceMean -> Add -> Sqrt -> Div -> Mul``), the pattern
  ONNX Runtime fuses; a module exported by ``export_onnx`` at opset >= 23
  emits the native ``RMSNormalization`` op where it equals the spec.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core import RMSNormSpec, RMSNormTypeError
from rmsnorm_core import rules as _rules
from rmsnorm_core.rules import Recipe
from rmsnorm_torch.distributed._dtensor import any_dtensor, dtensor_norm
from rmsnorm_torch.kernels._blocked import applies, blocked_forward, needs_grad
from rmsnorm_torch.kernels._fused import FusedKind, fused_kind, fused_norm, limit
from rmsnorm_torch.kernels._graph import rms_norm_graph
from rmsnorm_torch.kernels._kernel_choice import eager_norm, eager_residual
from rmsnorm_torch.kernels._native import native_eligible, native_rms_norm
from rmsnorm_torch.nn._resolve import OnnxExport, Plan, resolve
from rmsnorm_torch.nn._torch_dtypes import dtype_name


@torch.jit.unused
def _eager(
    x: Tensor,
    recipe: Recipe,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    onnx_mode: OnnxExport,
) -> Optional[Tensor]:
    """The native op (exporting at opset >= 23: ``OnnxExport.NATIVE``), the local run of a
    DTensor (``_dtensor.py``) or the thread's kernel (``_kernel_choice.py``); None for
    the graph path."""
    if onnx_mode == OnnxExport.NATIVE and native_eligible(x, plan, weight, bias):
        return native_rms_norm(x, plan, weight)
    if any_dtensor(x, weight, bias):

        def local(xl: Tensor, w: Optional[Tensor], b: Optional[Tensor]) -> Tensor:
            return norm(xl, recipe, w, b, plan.in_dtype)

        return dtensor_norm(x, recipe, plan, weight, bias, local)
    return eager_norm(x, plan, weight, bias)


@torch.jit.unused
def _eager_residual(
    x: Tensor,
    residual: Tensor,
    recipe: Recipe,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    store: torch.dtype,
) -> Optional[Tuple[Tensor, Tensor]]:
    """The thread's fused residual kernel (``_kernel_choice.py``), else None (unfused ops)."""
    if torch.jit.is_tracing() or torch.compiler.is_dynamo_compiling():
        return None  # traced code records the unfused ops
    if residual.shape != x.shape:
        return None  # the caller's check names the shapes
    plan = resolve(recipe, x, weight, bias, x.dtype)
    return eager_residual(x, residual, plan, weight, bias, store)


def norm(
    x: Tensor,
    recipe: Recipe,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    in_dtype: torch.dtype,
    onnx_mode: OnnxExport = OnnxExport.OFF,
) -> Tensor:
    """RMSNorm of ``x`` under a compiled spec (TorchScript-ready; see :func:`rms_norm`).

    ``in_dtype`` is the dtype the spec's "input" rules refer to; ``onnx_mode``
    (``OnnxExport``) is set only on the copy ``export_onnx`` exports.
    """
    return run(x, recipe, resolve(recipe, x, weight, bias, in_dtype), weight, bias, onnx_mode)


def run(
    x: Tensor,
    recipe: Recipe,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    onnx_mode: OnnxExport = OnnxExport.OFF,
) -> Tensor:
    """:func:`norm` with the call's plan already resolved (a module caches it)."""
    if not torch.jit.is_scripting():
        fast = _eager(x, recipe, plan, weight, bias, onnx_mode)
        if fast is not None:
            return fast
    else:
        if x.numel() < limit():
            kind = fused_kind(x, plan, weight, bias)
            if kind != FusedKind.UNFIT:
                return fused_norm(x, plan, kind, weight)
        if applies(x, plan) and not needs_grad(x, weight, bias):
            return blocked_forward(x, plan, weight, bias)[0]
    return rms_norm_graph(x, plan, weight, bias, onnx_mode != OnnxExport.OFF)


def norm_residual(
    x: Tensor,
    residual: Tensor,
    recipe: Recipe,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    onnx_mode: OnnxExport = OnnxExport.OFF,
) -> Tuple[Tensor, Tensor]:
    """``s = x + residual`` stored in the plan's residual dtype, then ``y = norm(s)``."""
    _rules.check_float("x", dtype_name(x.dtype))
    _rules.check_float("residual", dtype_name(residual.dtype))
    if not torch.jit.is_tracing():
        _rules.check_residual_shape(list(residual.shape), list(x.shape))
    store = x.dtype
    if recipe.residual_float32:
        store = torch.promote_types(x.dtype, torch.float32)
    if not torch.jit.is_scripting():
        fused = _eager_residual(x, residual, recipe, weight, bias, store)
        if fused is not None:
            return fused
    wide = torch.promote_types(store, residual.dtype)
    s = torch.add(x.to(wide), residual.to(wide)).to(store)
    return norm(s, recipe, weight, bias, x.dtype, onnx_mode), s


def _recipe(spec: RMSNormSpec) -> Recipe:
    if not isinstance(spec, RMSNormSpec):
        raise RMSNormTypeError(
            f"spec must be an RMSNormSpec, got {type(spec).__name__}; e.g. "
            "RMSNormSpec.preset('llama')"
        )
    return spec.recipe


def rms_norm(
    x: Tensor, spec: RMSNormSpec, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None
) -> Tensor:
    """RMSNorm of ``x`` under ``spec`` (formula: ``rmsnorm_core.RMSNormSpec``).

    Args:
        x: float16, bfloat16, float32 or float64 tensor of rank >= 1.
        spec: the spec.
        weight: the scale ``w`` (``g = scale_offset + w``, formed in float32),
            shaped as the normalized dims in increasing axis order; None for
            ``g = 1``. Only with ``spec.use_scale``.
        bias: added after the scale, same shape; None for none. Only with
            ``spec.use_bias``.

    Returns:
        ``y`` with ``x``'s shape, in the dtype the spec's ``output_dtype`` gives.

    Raises:
        rmsnorm_core.RMSNormError: bad axes, shapes, dtypes, devices or
            parameters the spec does not use.
    """
    return norm(x, _recipe(spec), weight, bias, x.dtype)


def rms_norm_residual(
    x: Tensor,
    residual: Tensor,
    spec: RMSNormSpec,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """``s = x + residual`` stored in ``spec.residual_dtype``, then ``y = rms_norm(s)``.

    The dtype rules (cast before the scale, output dtype) refer to ``x``'s
    dtype, so with ``residual_dtype="float32"`` a bfloat16 ``x`` still gives a
    bfloat16 ``y`` while ``s`` keeps float32 (flash-attn's
    ``residual_in_fp32``). Fused equals unfused: ``y`` is computed from ``s``.

    Args:
        x: as in :func:`rms_norm`.
        residual: same shape as ``x``, any floating dtype.
        spec: the spec.
        weight: as in :func:`rms_norm`.
        bias: as in :func:`rms_norm`.

    Returns:
        ``(y, s)``.
    """
    return norm_residual(x, residual, _recipe(spec), weight, bias)
