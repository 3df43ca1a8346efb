"""The graph path: plain, differentiable ops that script, trace, compile and export.

Written in the order ONNX Runtime fuses into SimplifiedLayerNormalization:
``Cast(fp32) -> Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div -> Mul(weight)``.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor


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


def _is_trailing(dims: List[int], rank: int) -> bool:
    return dims == list(range(rank - len(dims), rank))


def _mean_square(h: Tensor, dims: List[int], k: int) -> Tensor:
    if k < 0:
        return h.pow(2).mean(dims, keepdim=True)
    if _is_trailing(dims, h.dim()):
        flat = h.flatten(h.dim() - len(dims))
    else:
        kept: List[int] = []
        for i in range(h.dim()):
            if i not in dims:
                kept.append(i)
        flat = h.permute(kept + dims).flatten(len(kept))
    part = flat.narrow(-1, 0, k)
    return part.pow(2).mean([-1], keepdim=True).reshape(_keepdim_shape(h, dims))


def rms_norm_graph(
    x: Tensor,
    dims: List[int],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    eps_outside: bool,
    compute: torch.dtype,
    before_scale: bool,
    out_dtype: torch.dtype,
    scale_offset: float,
    k: int,
    in_dtype: torch.dtype,
) -> Tensor:
    """Apply the spec with canonical ``dims`` and a resolved dtype plan.

    ``k`` is the partial count of the flattened block (-1: the whole block);
    ``in_dtype`` is the dtype the spec's "input" rules refer to (``x``'s own,
    except in the residual variant).
    """
    # Casts only where the dtype changes: the TorchScript-based ONNX exporter
    # would otherwise emit no-op Casts that cost ONNX Runtime a full copy.
    h = x if x.dtype == compute else x.to(compute)
    ms = _mean_square(h, dims, k)
    if eps_outside:
        y = h / (torch.sqrt(ms) + eps)
    else:
        y = h / torch.sqrt(ms + eps)
    if before_scale and y.dtype != in_dtype:
        y = y.to(in_dtype)
    scale_dtype = torch.float64 if compute == torch.float64 else torch.float32
    # A trailing block broadcasts the parameters as they are; ONNX Runtime's
    # fusion wants the scale as the plain 1-D (or block-shaped) initializer.
    trailing = _is_trailing(dims, x.dim())
    if weight is not None:
        g = weight if weight.dtype == scale_dtype else weight.to(scale_dtype)
        if scale_offset != 0.0:
            g = g + scale_offset
        y = y * (g if trailing else g.reshape(_param_view(x, dims)))
    if bias is not None:
        b = bias if bias.dtype == scale_dtype else bias.to(scale_dtype)
        y = y + (b if trailing else b.reshape(_param_view(x, dims)))
    return y if y.dtype == out_dtype else y.to(out_dtype)
