"""The row-blocked forward kernel, in TorchScript so scripted modules run it too.

Rows are processed in blocks of about 1 Mi elements (``block_rows``) so that each
block is read from memory once and every later step (square, normalize, scale,
cast) runs on data still in cache. It applies to a trailing, contiguous
normalized block on the CPU with eps inside the root, no partial statistic and
float32 compute; it rounds at the spec's points, as the graph path does. The
residual variant (:func:`blocked_residual_forward`) adds ``x + residual`` into
the stored ``s`` block by block and normalizes that block while it is in cache:
one pass over memory instead of two.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_torch.nn._resolve import Plan


def block_rows(n: int) -> int:
    """Rows per forward block: about 1 Mi elements (4 MiB of float32, in L3).

    Measured on 4096 x 4096 (2 cores, 1 MiB L2 each, 32 MiB L3), forward time
    over ``x.clone()``: 256 Ki elements 1.68 / 1.65 / 1.39 (bf16 / fp16 / fp32),
    512 Ki 1.54 / 1.62 / 1.24, 1 Mi 1.49 / 1.53 / 1.21: fewer blocks, fewer
    per-block dispatches, which cost more here than the L2 misses.
    """
    block_elements = 1048576
    return max(1, block_elements // max(n, 1))


def backward_block_rows(n: int) -> int:
    """Rows per backward block: about 512 Ki elements (fwd+bwd over clone, fp32:
    3.23 at 256 Ki, 2.78 at 512 Ki, 3.14 at 1 Mi; half precision within noise)."""
    block_elements = 524288
    return max(1, block_elements // max(n, 1))


def min_elements() -> int:
    """Below this many elements the graph path's fewer dispatches win."""
    return 32768


def fits(x: Tensor, plan: Plan) -> bool:
    """Whether the blocked kernel can compute this call, at any size."""
    return (
        x.device.type == "cpu"
        and plan.trailing
        and x.is_contiguous()
        and not plan.eps_outside
        and plan.k < 0
        and plan.compute == torch.float32
    )


def applies(x: Tensor, plan: Plan) -> bool:
    """Whether the blocked kernel computes this call by default (else the graph path
    does): it :func:`fits` and the input is large enough for it to win."""
    return x.numel() >= min_elements() and fits(x, plan)


def _buffer(rows: int, n: int, dtype: torch.dtype) -> Tensor:
    """The float32 work block: the squares (then, for a float32 input, the
    normalized values); for a half-precision input twice as many rows, the second
    half its float32 copy, normalized in place (one op fewer than into the first
    half: [4096, 4096] bf16 forward over ``x.clone()`` 1.457 -> 1.414, one run)."""
    return torch.empty((rows if dtype == torch.float32 else 2 * rows, n), dtype=torch.float32)


def normalize_blocks(
    x2: Tensor,
    g: Optional[Tensor],
    b: Optional[Tensor],
    eps: float,
    before_scale: bool,
    mid: torch.dtype,
    out: Tensor,
    inv_all: Tensor,
    inverse: bool = False,
) -> None:
    rows, n = x2.shape
    step = block_rows(n)
    buf = _buffer(min(step, rows), n, x2.dtype)
    low = torch.empty((min(step, rows), n), dtype=mid) if before_scale else buf
    for start in range(0, rows, step):
        xb = x2[start : start + step]
        _normalize_block(xb, g, b, eps, before_scale, mid, out[start : start + xb.shape[0]],
                         inv_all[start : start + xb.shape[0]], buf, low, inverse)  # fmt: skip


def _normalize_block(
    xb: Tensor,
    g: Optional[Tensor],
    b: Optional[Tensor],
    eps: float,
    before_scale: bool,
    mid: torch.dtype,
    yb: Tensor,
    invb: Tensor,
    buf: Tensor,
    low: Tensor,
    inverse: bool = False,
) -> None:
    """One block: the statistic into ``invb``, the output into ``yb``; ``inverse``
    (``scale_multiplies="inverse"``): ``h * (inv * g)``, flax's order."""
    m, n = xb.shape
    t = buf[:m]
    xf = xb
    h = t  # where h * inv goes: the float32 copy when there is one (normalized in place)
    if xb.dtype != torch.float32:  # the float32 copy lives in the buffer's second half
        xf = buf[m : 2 * m].copy_(xb)
        h = xf
    # torch's own statistic (x * x, which is what its pow(x, 2) computes; sum; / n: what
    # torch.rms_norm's mean does), so each row rounds as in torch.nn.RMSNorm and the
    # fused op, whatever the batch size; mul streams faster than pow's dispatch to it
    torch.sum(torch.mul(xf, xf, out=t), -1, keepdim=True, out=invb)
    invb.div_(n).add_(eps).rsqrt_()
    if inverse and g is not None:  # inv * g, then times h (commutative: h * (inv * g))
        torch.mul(invb, g, out=t)
        _finish(t.mul_(xf), None, b, yb)
        return
    if not before_scale and g is None and b is None and yb.dtype == torch.float32:
        torch.mul(xf, invb, out=yb)
        return
    torch.mul(xf, invb, out=h)
    if before_scale and mid != torch.float32:
        # the spec's rounding of h * inv to the plan's mid dtype (the input's, or the
        # parameters' for output_dtype="param"), and back (exact)
        h.copy_(low[:m].copy_(h))
    _finish(h, g, b, yb)


def _finish(t: Tensor, g: Optional[Tensor], b: Optional[Tensor], yb: Tensor) -> None:
    """``yb = t * g + b`` in float32, rounded once into ``yb``'s dtype.

    In place in the float32 block buffer, then one conversion: an elementwise op
    with a half-precision ``out=`` computes into a fresh temporary and copies it
    (a profile of the bf16 forward showed those hidden copies as 66% of its time).
    """
    if yb.dtype == torch.float32:
        if g is not None and b is not None:
            torch.add(t.mul_(g), b, out=yb)
        elif g is not None:
            torch.mul(t, g, out=yb)
        elif b is not None:
            torch.add(t, b, out=yb)
        else:
            yb.copy_(t)
        return
    if g is not None:
        t.mul_(g)
    if b is not None:
        t.add_(b)
    yb.copy_(t)


def _flat_params(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]
) -> Tuple[int, Optional[Tensor], Optional[Tensor]]:
    """The block size ``n`` and the parameters as float32 rows: ``g = w + offset``, ``b``."""
    n = 1
    for d in x.shape[x.dim() - len(plan.dims) :]:
        n *= d
    g: Optional[Tensor] = None
    if weight is not None:
        g = weight.reshape(n).float() + plan.scale_offset
    b: Optional[Tensor] = None
    if bias is not None:
        b = bias.reshape(n).float()
    return n, g, b


def blocked_forward(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """Return ``(y, inv)``: the output and the float32 inverse rms per row."""
    n, g, b = _flat_params(x, plan, weight, bias)
    x2 = x.reshape(-1, n)
    out = torch.empty(x.shape, dtype=plan.out_dtype, device=x.device)
    inv = torch.empty((x2.shape[0], 1), dtype=torch.float32, device=x.device)
    normalize_blocks(x2, g, b, plan.eps, plan.before_scale, plan.mid, out.view(-1, n), inv,
                     plan.scale_inverse)  # fmt: skip
    return out, inv


def blocked_residual_forward(
    x: Tensor,
    residual: Tensor,
    store: torch.dtype,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
) -> Tuple[Tensor, Tensor, Tensor]:
    """``(y, s, inv)`` with ``s = x + residual`` rounded to ``store``, in one pass:
    each block's sum is written to ``s`` and normalized while still in cache."""
    n, g, b = _flat_params(x, plan, weight, bias)
    x2, r2 = x.reshape(-1, n), residual.reshape(-1, n)
    rows = x2.shape[0]
    out = torch.empty(x.shape, dtype=plan.out_dtype, device=x.device)
    s = torch.empty(x.shape, dtype=store, device=x.device)
    inv = torch.empty((rows, 1), dtype=torch.float32, device=x.device)
    y2, s2 = out.view(-1, n), s.view(-1, n)
    step = block_rows(n)
    buf = _buffer(min(step, rows), n, store)
    low = torch.empty((min(step, rows), n), dtype=plan.mid) if plan.before_scale else buf
    # the sum is taken in promote(store, residual) (the unfused path's rule): where that
    # is wider than both inputs (residual_dtype="float32"), widen x first, exactly
    widen = torch.promote_types(x.dtype, residual.dtype) != torch.promote_types(
        store, residual.dtype
    )
    for start in range(0, rows, step):
        stop = min(start + step, rows)
        if widen:
            sb = s2[start:stop].copy_(x2[start:stop]).add_(r2[start:stop])
        else:
            sb = torch.add(x2[start:stop], r2[start:stop], out=s2[start:stop])
        _normalize_block(sb, g, b, plan.eps, plan.before_scale, plan.mid, y2[start:stop],
                         inv[start:stop], buf, low, plan.scale_inverse)  # fmt: skip
    return out, s, inv


def needs_grad(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """Whether autograd must see this call (the blocked kernel writes in place)."""
    if not torch.is_grad_enabled():
        return False
    if x.requires_grad:
        return True
    if weight is not None and weight.requires_grad:
        return True
    return bias is not None and bias.requires_grad
