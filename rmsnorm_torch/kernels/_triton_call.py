"""The Triton kernel's side of the dispatch: whether it is installed, whether it fits a
call, and its arguments (eager calls only; ``_kernel_choice.decide`` asks)."""

from __future__ import annotations

import functools
import importlib.util
import math
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core import RMSNormError
from rmsnorm_torch.kernels._plain import plain
from rmsnorm_torch.kernels._resolve import Plan
from rmsnorm_torch.kernels._torch_dtypes import torch_dtype_name

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@functools.cache
def triton_ops() -> Optional[Any]:
    """The custom-op module when ``triton`` imports, else None (never an error)."""
    try:
        if importlib.util.find_spec("triton") is None:
            return None
        from rmsnorm_torch.kernels import _triton_ops
    except Exception:  # a broken triton install: the other paths still work
        return None
    return _triton_ops


def triton_unfit(x: Tensor, plan: Plan, weight: Any, bias: Any, residual: Any = None) -> str:
    """Why the Triton kernel cannot compute this call ("" when it can)."""
    if not plan.trailing:
        return f"the normalized dims {plan.dims} of a rank-{x.dim()} x are not the trailing ones"
    if x.dtype not in _TRITON_DTYPES:
        return f"x is {torch_dtype_name(x.dtype)}; the kernel takes float16, bfloat16 or float32"
    if plan.compute != torch.float32:
        compute = torch_dtype_name(plan.compute)
        return f"the spec computes in {compute}; the kernel computes in float32"
    if plan.scale != torch.float32:
        scale = torch_dtype_name(plan.scale)
        return f"the spec multiplies the scale in {scale}; the kernel in float32"
    if not x.is_contiguous() or x.numel() == 0:
        return "x is not contiguous" if x.numel() else "x is empty"
    if not all(plain(t) for t in (x, weight, bias, residual)):
        return "a tensor is a subclass, under a torch.func transform or carries a tangent"
    if residual is not None and (
        residual.dtype not in _TRITON_DTYPES or not residual.is_contiguous()
    ):
        kind = torch_dtype_name(residual.dtype)
        return f"the residual is {kind}, contiguous={residual.is_contiguous()}"
    return ""


def triton_for(x: Tensor, reason: str, forced: bool) -> Optional[Any]:
    """The op module if the Triton kernel runs this call; raises if forced and it cannot."""
    if not forced:
        ops = None if reason else triton_ops()
        return ops if ops is not None and not ops.interpreted() else None
    ops = triton_ops()
    if ops is None:
        from rmsnorm_core._install import install_command

        reason = f"triton is not installed ({install_command(['triton'])})"
    elif not x.is_cuda and not ops.interpreted():
        reason = (
            f"x is on {x.device}: the kernel runs on CPU tensors only under the Triton "
            "interpreter; set TRITON_INTERPRET=1 before the kernels are first used"
        )
    if reason:
        raise RMSNormError(
            f"use_kernel('triton'): the Triton kernel cannot run this call: {reason}"
        )
    return ops


def _flat(p: Optional[Tensor]) -> Optional[Tensor]:
    return None if p is None else p.to(torch.float32).reshape(-1).contiguous()


def triton_args(x: Tensor, plan: Plan, weight: Any, bias: Any) -> Tuple[Any, ...]:
    """The Triton op's arguments after ``x`` and the residual."""
    n = math.prod(x.shape[x.dim() - len(plan.dims) :])
    return (_flat(weight), _flat(bias), n, plan.k if plan.k >= 0 else n, plan.eps,
            plan.eps_outside, plan.before_scale, plan.mid, plan.out_dtype)  # fmt: skip


def triton_norm(x: Tensor, plan: Plan, weight: Any, bias: Any, ops: Any) -> Tensor:
    """The Triton forward (and, through its autograd, backward) of one call."""
    args = triton_args(x, plan, weight, bias)
    return ops.triton_forward(x, None, *args, x.dtype, plan.scale_offset, plan.scale_inverse)[0]
