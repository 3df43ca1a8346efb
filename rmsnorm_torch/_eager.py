"""The eager fast path: a row-blocked kernel with its own backward.

Rows are processed in blocks of about ``BLOCK_ELEMENTS`` so that each block is
read from memory once and every later step (square, normalize, scale, cast)
runs on data still in cache. Forward saves only the float32 inverse rms per
row (not an fp32 copy of ``x``); backward recomputes ``h * inv`` per block and
accumulates the scale gradient in float32.

Used only in eager mode for a trailing, contiguous normalized block with eps
inside the root, no partial statistic and float32 compute; everything else
goes through ``_graph.rms_norm_graph``. Results equal the graph path within
the tolerance table (they round at the same points).
"""

from __future__ import annotations

from typing import Any, List, Optional

import torch
from torch import Tensor

from ._plan import compute_dtype_for, output_dtype_for

#: Elements per block: 256 Ki float32 = 1 MiB, sized for a core's L2 cache.
BLOCK_ELEMENTS = 1 << 18
#: Below this many elements the graph path's fewer dispatches win.
MIN_ELEMENTS = 1 << 15

def _applies(x: Tensor, dims: List[int], eps_placement: str, compute: torch.dtype,
             partial: float) -> bool:
    rank = x.dim()
    return (
        x.device.type == "cpu"
        and x.numel() >= MIN_ELEMENTS
        and dims == list(range(rank - len(dims), rank))
        and x.is_contiguous()
        and eps_placement == "inside"
        and partial >= 1.0
        and compute == torch.float32
    )


def _normalize_blocks(x2: Tensor, g: Optional[Tensor], b: Optional[Tensor], eps: float,
                      before_scale: bool, in_dtype: torch.dtype, out: Tensor, inv_all: Tensor) -> None:
    rows, n = x2.shape
    step = max(1, BLOCK_ELEMENTS // max(n, 1))
    buf = torch.empty((min(step, rows), n), dtype=torch.float32)
    low = torch.empty((min(step, rows), n), dtype=in_dtype) if before_scale else buf
    for start in range(0, rows, step):
        xb = x2[start:start + step]
        m = xb.shape[0]
        t = buf[:m]
        xf = xb if xb.dtype == torch.float32 else t.copy_(xb)
        inv = torch.linalg.vector_norm(xf, dim=-1, keepdim=True)
        inv = inv.square_().div_(n).add_(eps).rsqrt_()
        inv_all[start:start + m] = inv
        yb = out[start:start + m]
        if before_scale:
            base = torch.mul(xf, inv, out=low[:m])  # the spec's rounding to the input dtype
        elif g is None and b is None:
            torch.mul(xf, inv, out=yb)
            continue
        else:
            base = torch.mul(xf, inv, out=t)
        if b is None:
            if g is None:
                yb.copy_(base)
            else:
                torch.mul(base, g, out=yb)  # product rounded once to the output dtype
            continue
        if g is not None:
            base = torch.mul(base, g, out=t)
        torch.add(base, b, out=yb)


class _BlockedRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor],
                n_dims: int, eps: float, scale_offset: float, before_scale: bool,
                in_dtype: torch.dtype, out_dtype: torch.dtype) -> Tensor:
        n = 1
        for d in x.shape[x.dim() - n_dims:]:
            n *= d
        x2 = x.reshape(-1, n)
        g = None if weight is None else weight.reshape(n).float() + scale_offset
        b = None if bias is None else bias.reshape(n).float()
        out = torch.empty(x.shape, dtype=out_dtype, device=x.device)
        inv = torch.empty((x2.shape[0], 1), dtype=torch.float32, device=x.device)
        _normalize_blocks(x2, g, b, eps, before_scale, in_dtype, out.view(-1, n), inv)
        ctx.save_for_backward(x, weight, bias, inv)
        ctx.scale_offset = scale_offset
        ctx.n = n
        return out

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> Any:
        from ._eager_backward import blocked_backward

        x, weight, bias, inv = ctx.saved_tensors
        dx, dw, db = blocked_backward(x, dy, weight, bias, inv, ctx.n, ctx.scale_offset,
                                      ctx.needs_input_grad)
        return dx, dw, db, None, None, None, None, None, None


def blocked_rms_norm(
    x: Tensor, dims: List[int], weight: Optional[Tensor], bias: Optional[Tensor],
    eps: float, eps_placement: str, compute_dtype: str, cast_order: str, output_dtype: str,
    scale_offset: float, partial: float, in_dtype: torch.dtype,
) -> Optional[Tensor]:
    """Run the blocked kernel, or return None where it does not apply."""
    compute = compute_dtype_for(compute_dtype, in_dtype)
    if not _applies(x, dims, eps_placement, compute, partial):
        return None
    out_dtype = output_dtype_for(output_dtype, in_dtype, weight, bias)
    return _BlockedRMSNorm.apply(x, weight, bias, len(dims), eps, scale_offset,
                                 cast_order == "before_scale", in_dtype, out_dtype)
