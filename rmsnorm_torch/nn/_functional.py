"""The pure functions: ``rms_norm`` and ``rms_norm_residual``, and their TorchScript cores.

The formula and every precision rule are in ``rmsnorm_core.RMSNormSpec``.
The public functions take the spec itself; the modules and scripted code
call :func:`norm` / :func:`norm_residual` with the spec compiled once into a
``Recipe`` (``spec.recipe``), so nothing is copied field by field.

A call is resolved into its plan (``kernels/_resolve.py``), one function chooses its
kernel (``kernels/_kernel_choice.decide``: the fused op, the CPU operator, Triton or
the graph path) and :func:`execute` runs it. Under TorchScript, tracing,
``torch.compile``, ``torch.export`` and ONNX export the graph path (or the fused op,
in scripted code) runs; a module exported by ``export_onnx`` at opset >= 23 emits
the native ``RMSNormalization`` op where it equals the spec.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core import RMSNormSpec, RMSNormTypeError
from rmsnorm_core import rules as _rules
from rmsnorm_core.rules import Recipe
from rmsnorm_torch.distributed._dtensor import any_dtensor, dtensor_norm
from rmsnorm_torch.kernels._fused import fused_kind, fused_norm
from rmsnorm_torch.kernels._graph import rms_norm_graph
from rmsnorm_torch.kernels._kernel_choice import Kernel, cpu_op_wanted, decide, torch_layout
from rmsnorm_torch.kernels._native import native_rms_norm
from rmsnorm_torch.kernels._resolve import OnnxExport, Plan, resolve
from rmsnorm_torch.kernels._torch_dtypes import torch_dtype_name
from rmsnorm_torch.nn._arguments import check_tensor


def _subclass(t: Optional[Tensor]) -> bool:
    return t is not None and type(t) is not Tensor and type(t) is not torch.nn.Parameter


@torch.jit.unused
def eager_decide(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor], onnx_mode: OnnxExport
) -> Kernel:
    """:func:`decide` with what only eager code knows: the context's ``use_kernel``,
    whether ``x`` is being traced, whether Triton is installed and fits, and whether the
    CPU operator is native (built or loaded here
    the first time a call could take it)."""
    from rmsnorm_torch.kernels._kernel_choice import current_kernel
    from rmsnorm_torch.kernels._plain import plain

    if torch.compiler.is_dynamo_compiling() or torch.jit.is_tracing():
        # traced code records the graph path whatever the context chose (and dynamo
        # cannot read a ContextVar)
        return decide(x, plan, weight, bias, onnx_mode, "auto", False, False, False)
    direct = not any(_subclass(t) for t in (x, weight, bias))
    custom = direct and plain(x) and plain(weight) and plain(bias)
    choice = current_kernel()
    triton_fits = False
    if custom and x.is_cuda and choice == "auto":
        from rmsnorm_torch.kernels._triton_call import triton_for, triton_unfit

        triton_fits = triton_for(x, triton_unfit(x, plan, weight, bias), False) is not None
    native_cpu = False
    if custom and choice == "auto" and cpu_op_wanted(x, plan, weight, bias):
        from rmsnorm_torch.kernels._cpu_op import native  # builds it on the first such call

        native_cpu = native()
    return decide(x, plan, weight, bias, onnx_mode, choice, direct, custom, triton_fits, native_cpu)


@torch.jit.unused
def _execute_eager(
    kernel: Kernel,
    x: Tensor,
    recipe: Recipe,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
) -> Optional[Tensor]:
    """The kernels only eager code runs (the CPU operator, Triton) and the local run of
    a DTensor (``_dtensor.py``); None for the graph path."""
    if kernel == Kernel.CPU_OP:
        from rmsnorm_torch.kernels._cpu_norm import cpu_norm

        return cpu_norm(x, plan, weight, bias)
    if kernel == Kernel.TRITON:
        from rmsnorm_torch.kernels._triton_call import triton_for, triton_norm, triton_unfit

        ops = triton_for(x, triton_unfit(x, plan, weight, bias), True)
        return triton_norm(x, plan, weight, bias, ops)
    if any_dtensor(x, weight, bias):

        def local(xl: Tensor, w: Optional[Tensor], b: Optional[Tensor]) -> Tensor:
            return norm(xl, recipe, w, b, plan.in_dtype)

        return dtensor_norm(x, recipe, plan, weight, bias, local)
    return None


def execute(
    kernel: Kernel,
    x: Tensor,
    recipe: Recipe,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    onnx_mode: OnnxExport = OnnxExport.OFF,
) -> Tensor:
    """Run ``kernel`` (from :func:`decide`) on one resolved call."""
    if kernel == Kernel.FUSED:
        return fused_norm(x, plan, fused_kind(x, plan, weight, bias), weight)
    if kernel == Kernel.ONNX_NATIVE:
        return native_rms_norm(x, plan, weight)
    if not torch.jit.is_scripting():
        y = _execute_eager(kernel, x, recipe, plan, weight, bias)
        if y is not None:
            return y
    y = rms_norm_graph(x, plan, weight, bias, onnx_mode != OnnxExport.OFF)
    if onnx_mode == OnnxExport.OFF and torch_layout(plan, bias):
        # torch.rms_norm's layout where it does not compute the call (a weight of another
        # dtype, traced or compiled code): the same values, laid out as torch.nn.RMSNorm's;
        # not decided by x's layout here, which a trace would fix at its example's (a
        # contiguous y is returned as it is)
        y = y.contiguous()
    return y


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
    plan = resolve(recipe, x, weight, bias, in_dtype)
    if torch.jit.is_scripting():
        kernel = decide(x, plan, weight, bias, onnx_mode, "auto", True, False, False)
    else:
        kernel = eager_decide(x, plan, weight, bias, onnx_mode)
    return execute(kernel, x, recipe, plan, weight, bias, onnx_mode)


@torch.jit.unused
def _triton_residual(
    x: Tensor,
    residual: Tensor,
    recipe: Recipe,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    store: torch.dtype,
) -> Optional[Tuple[Tensor, Tensor]]:
    """The fused Triton residual kernel where it runs this call, else None: elsewhere
    ``s = x + residual`` is one op and ``norm(s)`` takes the call's kernel."""
    from rmsnorm_torch.kernels._kernel_choice import current_kernel
    from rmsnorm_torch.kernels._plain import plain

    if torch.compiler.is_dynamo_compiling() or torch.jit.is_tracing() or not plain(x):
        return None  # traced code records the unfused ops
    choice = current_kernel()
    if residual.shape != x.shape or not (choice == "triton" or (choice == "auto" and x.is_cuda)):
        return None  # a shape mismatch is named by the caller's check
    from rmsnorm_torch.kernels._triton_call import triton_args, triton_for, triton_unfit

    plan = resolve(recipe, x, weight, bias, x.dtype)
    reason = triton_unfit(x, plan, weight, bias, residual)
    ops = triton_for(x, reason, choice == "triton")
    if ops is None:
        return None
    args = triton_args(x, plan, weight, bias)
    y, s, _ = ops.triton_forward(x, residual, *args, store, plan.scale_offset, plan.scale_inverse)
    return y, s


def norm_residual(
    x: Tensor,
    residual: Tensor,
    recipe: Recipe,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    onnx_mode: OnnxExport = OnnxExport.OFF,
) -> Tuple[Tensor, Tensor]:
    """``s = x + residual`` stored in the plan's residual dtype, then ``y = norm(s)``."""
    _rules.check_float("x", torch_dtype_name(x.dtype))
    _rules.check_float("residual", torch_dtype_name(residual.dtype))
    if not torch.jit.is_tracing():
        _rules.check_residual_shape(list(residual.shape), list(x.shape))
    store = x.dtype
    if recipe.residual_float32:
        store = torch.promote_types(x.dtype, torch.float32)
    if not torch.jit.is_scripting():
        fused = _triton_residual(x, residual, recipe, weight, bias, store)
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


def _check_tensors(x: Any, weight: Any, bias: Any) -> None:
    check_tensor("x", x)
    check_tensor("weight", weight, optional=True)
    check_tensor("bias", bias, optional=True)


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
            parameters the spec does not use; an ``RMSNormTypeError`` for an
            argument that is not a tensor.
    """
    _check_tensors(x, weight, bias)
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
    _check_tensors(x, weight, bias)
    check_tensor("residual", residual)
    return norm_residual(x, residual, _recipe(spec), weight, bias)
