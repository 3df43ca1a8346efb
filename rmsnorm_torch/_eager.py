"""The eager fast path: the row-blocked kernel (``_blocked.py``) with its own backward.

Forward saves only the float32 inverse rms per
row (not an fp32 copy of ``x``); backward recomputes ``h * inv`` per block and
accumulates the scale gradient in float32.

Used only in eager mode for a trailing, contiguous normalized block with eps
inside the root, no partial statistic and float32 compute; everything else
goes through ``_graph.rms_norm_graph``. Results equal the graph path within
the tolerance table (they round at the same points).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import Tensor

from ._blocked import blocked_forward, needs_grad


class _BlockedRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Optional[Tensor],
        bias: Optional[Tensor],
        n_dims: int,
        eps: float,
        scale_offset: float,
        before_scale: bool,
        in_dtype: torch.dtype,
        out_dtype: torch.dtype,
    ) -> Tensor:
        out, inv = blocked_forward(
            x, n_dims, weight, bias, eps, scale_offset, before_scale, in_dtype, out_dtype
        )
        ctx.save_for_backward(x, weight, bias, inv)
        ctx.scale_offset = scale_offset
        ctx.n = math.prod(x.shape[x.dim() - n_dims :])
        return out

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> Any:
        from ._eager_backward import blocked_backward

        x, weight, bias, inv = ctx.saved_tensors
        dx, dw, db = blocked_backward(
            x, dy, weight, bias, inv, ctx.n, ctx.scale_offset, ctx.needs_input_grad
        )
        return dx, dw, db, None, None, None, None, None, None


def blocked_rms_norm(
    x: Tensor,
    n_dims: int,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    scale_offset: float,
    before_scale: bool,
    in_dtype: torch.dtype,
    out_dtype: torch.dtype,
) -> Tensor:
    """The blocked kernel (the caller checked ``applies``); autograd only if needed."""
    if not needs_grad(x, weight, bias):
        return blocked_forward(
            x, n_dims, weight, bias, eps, scale_offset, before_scale, in_dtype, out_dtype
        )[0]
    return _BlockedRMSNorm.apply(
        x, weight, bias, n_dims, eps, scale_offset, before_scale, in_dtype, out_dtype
    )
