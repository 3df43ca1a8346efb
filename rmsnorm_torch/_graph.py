"""The graph path: plain, differentiable ops that script, trace, compile and export.

Written in the order ONNX Runtime fuses into SimplifiedLayerNormalization:
``Cast(fp32) -> Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div -> Mul(weight)``.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from ._resolve import Plan


def _keepdim_shape(x: Tensor, dims: List[int]) -> List[int]:
    shape: List[int] = []
    for i in range(x.dim()):
        shape.append(1 if i in dims else x.shape[i])
    return shape


def _param_view(x: Tensor, dims: List[int]) -> List[int]:
    shape: List[int] = []
    for i in range(x.dim()):
        shape.append(x.shape[i] if i in dims else 1)
    return shape


def _mean_square(h: Tensor, plan: Plan) -> Tensor:
    dims = plan.dims
    if plan.k < 0:
        return h.pow(2).mean(dims, keepdim=True)
    if plan.trailing:
        flat = h.flatten(h.dim() - len(dims))
    else:
        kept: List[int] = []
        for i in range(h.dim()):
            if i not in dims:
                kept.append(i)
        flat = h.permute(kept + dims).flatten(len(kept))
    part = flat.narrow(-1, 0, plan.k)
    return part.pow(2).mean([-1], keepdim=True).reshape(_keepdim_shape(h, dims))


def _root(ms: Tensor) -> Tensor:
    """``sqrt(ms)`` whose gradient at ``ms == 0`` is 0, not inf (the spec's edge rule:
    an all-zero row has finite gradients with eps outside the root). Values are
    ``sqrt``'s own; a NaN ``ms`` gives 0 here, and its row stays NaN through ``h``."""
    positive = ms > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, ms, torch.ones_like(ms))), 0.0)


def rms_norm_graph(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]
) -> Tensor:
    """Apply the spec as plain ops (the formula: ``rmsnorm_core.RMSNormSpec``)."""
    # Casts only where the dtype changes: the TorchScript-based ONNX exporter
    # would otherwise emit no-op Casts that cost ONNX Runtime a full copy.
    h = x if x.dtype == plan.compute else x.to(plan.compute)
    ms = _mean_square(h, plan)
    if plan.eps_outside:
        y = h / (_root(ms) + plan.eps)
    else:
        y = h / torch.sqrt(ms + plan.eps)
    if plan.before_scale and y.dtype != plan.in_dtype:
        y = y.to(plan.in_dtype)
    # A trailing block broadcasts the parameters as they are; ONNX Runtime's
    # fusion wants the scale as the plain 1-D (or block-shaped) initializer.
    if weight is not None:
        g = weight if weight.dtype == plan.scale else weight.to(plan.scale)
        if plan.scale_offset != 0.0:
            g = g + plan.scale_offset
        y = y * (g if plan.trailing else g.reshape(_param_view(x, plan.dims)))
    if bias is not None:
        b = bias if bias.dtype == plan.scale else bias.to(plan.scale)
        y = y + (b if plan.trailing else b.reshape(_param_view(x, plan.dims)))
    return y if y.dtype == plan.out_dtype else y.to(plan.out_dtype)
