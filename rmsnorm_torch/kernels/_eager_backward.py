"""Backward of the eager blocked kernel (see ``_eager.py``).

With ``nh = h * inv`` (recomputed per block from ``x`` and the saved float32
``inv``) and ``gy = dy * g``::

    dx = inv * (gy - nh * mean(gy * nh))
    dweight = sum over rows of dy * nh      (accumulated in float32)
    dbias = sum over rows of dy
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_torch.kernels._blocked import backward_block_rows


def blocked_backward(
    x: Tensor,
    dy: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    inv: Tensor,
    n: int,
    scale_offset: float,
    needs: Tuple[bool, ...],
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Return ``(dx, dweight, dbias)``; None where no gradient is needed."""
    need_dx, need_dw, need_db = (
        needs[0],
        needs[1] and weight is not None,
        needs[2] and bias is not None,
    )
    x2 = x.reshape(-1, n)
    dy2 = dy.reshape(-1, n)
    rows = x2.shape[0]
    g = None if weight is None else weight.reshape(n).float() + scale_offset
    dx = torch.empty(x.shape, dtype=x.dtype, device=x.device) if need_dx else None
    dx2 = dx.view(-1, n) if dx is not None else None
    dw = torch.zeros(n, dtype=torch.float32, device=x.device) if need_dw else None
    step = backward_block_rows(n)
    nh_buf = torch.empty((min(step, rows), n), dtype=torch.float32, device=x.device)
    gy_buf = torch.empty_like(nh_buf)
    for start in range(0, rows, step):
        xb = x2[start : start + step]
        dyb = dy2[start : start + step]
        invb = inv[start : start + step]
        m = xb.shape[0]
        nh = torch.mul(xb, invb, out=nh_buf[:m])
        gy = gy_buf[:m]
        if dw is not None:
            dw.add_(torch.mul(dyb, nh, out=gy).sum(0))
        if dx2 is None:
            continue
        if g is None:
            gy.copy_(dyb)
        else:
            torch.mul(dyb, g, out=gy)
        mean = torch.linalg.vecdot(gy, nh).unsqueeze_(-1).div_(n)
        torch.addcmul(gy, nh, mean, value=-1.0, out=gy)
        torch.mul(gy, invb, out=dx2[start : start + m])
    dweight = None if dw is None or weight is None else dw.to(weight.dtype).reshape(weight.shape)
    dbias = None
    if need_db and bias is not None:
        dbias = dy2.sum(0, dtype=torch.float32).to(bias.dtype).reshape(bias.shape)
    return dx, dweight, dbias
