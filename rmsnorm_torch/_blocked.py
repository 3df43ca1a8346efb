"""The row-blocked forward kernel, in TorchScript so scripted modules run it too.

Rows are processed in blocks of about 256 Ki elements (``block_rows``) so that each block is
read from memory once and every later step (square, normalize, scale, cast)
runs on data still in cache. It applies to a trailing, contiguous normalized
block on the CPU with eps inside the root, no partial statistic and float32
compute; it rounds at the spec's points, as the graph path does.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ._resolve import Plan


def block_rows(n: int) -> int:
    """Rows per block: about 256 Ki elements (1 MiB of float32), sized for a core's L2."""
    block_elements = 262144
    return max(1, block_elements // max(n, 1))


def min_elements() -> int:
    """Below this many elements the graph path's fewer dispatches win."""
    return 32768


def applies(x: Tensor, plan: Plan) -> bool:
    """Whether the blocked kernel computes this call (else the graph path does)."""
    return (
        x.device.type == "cpu"
        and x.numel() >= min_elements()
        and plan.trailing
        and x.is_contiguous()
        and not plan.eps_outside
        and plan.k < 0
        and plan.compute == torch.float32
    )


def normalize_blocks(
    x2: Tensor,
    g: Optional[Tensor],
    b: Optional[Tensor],
    eps: float,
    before_scale: bool,
    in_dtype: torch.dtype,
    out: Tensor,
    inv_all: Tensor,
) -> None:
    rows, n = x2.shape
    step = block_rows(n)
    buf = torch.empty((min(step, rows), n), dtype=torch.float32)
    low = torch.empty((min(step, rows), n), dtype=in_dtype) if before_scale else buf
    for start in range(0, rows, step):
        xb = x2[start : start + step]
        m = xb.shape[0]
        t = buf[:m]
        xf = xb
        if xb.dtype != torch.float32:
            xf = t.copy_(xb)
        inv = _sum_of_squares(xf, n).div_(n).add_(eps).rsqrt_()
        inv_all[start : start + m] = inv
        yb = out[start : start + m]
        if not before_scale and g is None and b is None:
            torch.mul(xf, inv, out=yb)
        elif before_scale:
            # the spec's rounding of h * inv to the input dtype
            _finish(torch.mul(xf, inv, out=low[:m]), g, b, t, yb)
        else:
            _finish(torch.mul(xf, inv, out=t), g, b, t, yb)


def _sum_of_squares(xf: Tensor, n: int) -> Tensor:
    """Per-row sum of squares, keepdim.

    vector_norm streams fastest (1.4 ms against vecdot's 22 ms on 4096 x 4096)
    but its squared result drifts with the row length: 3e-7 relative at 4096
    elements, 4e-6 at 262144, 2e-5 at 1,000,000. vecdot sums with torch's
    cascade reduction (1.2e-7 at every length), so long rows take it.
    """
    if n <= 32768:
        return torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_()
    return torch.linalg.vecdot(xf, xf).unsqueeze_(-1)


def _finish(base: Tensor, g: Optional[Tensor], b: Optional[Tensor], t: Tensor, yb: Tensor) -> None:
    """``yb = base * g + b``, in float32, rounded once into ``yb``'s dtype."""
    if g is not None and b is not None:
        torch.add(torch.mul(base, g, out=t), b, out=yb)
    elif g is not None:
        torch.mul(base, g, out=yb)
    elif b is not None:
        torch.add(base, b, out=yb)
    else:
        yb.copy_(base)


def blocked_forward(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """Return ``(y, inv)``: the output and the float32 inverse rms per row."""
    n_dims = len(plan.dims)
    n = 1
    for d in x.shape[x.dim() - n_dims :]:
        n *= d
    x2 = x.reshape(-1, n)
    g: Optional[Tensor] = None
    if weight is not None:
        g = weight.reshape(n).float() + plan.scale_offset
    b: Optional[Tensor] = None
    if bias is not None:
        b = bias.reshape(n).float()
    out = torch.empty(x.shape, dtype=plan.out_dtype, device=x.device)
    inv = torch.empty((x2.shape[0], 1), dtype=torch.float32, device=x.device)
    normalize_blocks(x2, g, b, plan.eps, plan.before_scale, plan.in_dtype, out.view(-1, n), inv)
    return out, inv


def needs_grad(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """Whether autograd must see this call (the blocked kernel writes in place)."""
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad:
        return True
    if weight is not None and weight.requires_grad:
        return True
    return bias is not None and bias.requires_grad
