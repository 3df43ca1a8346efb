"""The pure-Python kernel: the CPU operator's fallback where no C++ compiler is found.

The same steps as ``csrc/rmsnorm_cpu.cpp`` in the same order, ATen op by ATen op,
on blocks of rows, so the bits are the same (``parity_tests/test_cpu_op.py`` runs
both against the graph path). What it lacks is the one parallel region: every op
here is its own, so it is slower, and more so when other processes share the cores.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

_BLOCK_ELEMENTS = 1048576  # fewer, larger blocks: each op here is a Python dispatch


def _rows(n: int) -> int:
    return max(1, _BLOCK_ELEMENTS // max(n, 1))


def _output_like(x: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """y laid out as ``csrc/rmsnorm_cpu.cpp``'s ``output_like`` lays it out: row-major
    for a one-element block, else as TensorIterator lays out ``x * inv`` (taken from
    that product on meta tensors)."""
    if math.prod(x.shape[x.dim() - k :]) == 1:
        return torch.empty(x.shape, dtype=dtype)
    meta = torch.empty_strided(x.shape, x.stride(), device="meta")
    rows = torch.empty(tuple(x.shape[: x.dim() - k]) + (1,) * k, device="meta")
    return torch.empty_strided(x.shape, (meta * rows).stride(), dtype=dtype)


def forward(
    x: Tensor,
    block: List[int],
    gain: Optional[Tensor],
    bias: Optional[Tensor],
    eps: float,
    round_mid: bool,
    mid: torch.dtype,
    out_dtype: torch.dtype,
    inverse: bool,
) -> Tuple[Tensor, Tensor]:
    """``(y, inv)``: see ``csrc/rmsnorm_cpu.cpp``'s ``rmsnorm_forward``."""
    n = math.prod(block)
    rows = x.numel() // n if n else 0
    y = _output_like(x, len(block), out_dtype)
    inv = torch.empty((rows, 1), dtype=torch.float32)
    x2, y2 = x.reshape(rows, n), y.view(rows, n)
    g = None if gain is None else gain.reshape(n).float()  # a half gain widened (exact)
    b = None if bias is None else bias.reshape(n).float()
    step = _rows(n)
    for start in range(0, rows, step):
        h = x2[start : start + step].float()
        invb = inv[start : start + step]
        torch.sum(h * h, -1, keepdim=True, out=invb)
        invb.div_(n).add_(eps).rsqrt_()
        if inverse and g is not None:
            t = (invb * g).mul_(h)
        else:
            t = h * invb
            if round_mid:
                t = t.to(mid).float()
            if g is not None:
                t.mul_(g)
        if b is not None:
            t.add_(b)
        y2[start : start + step].copy_(t)
    return y, inv


def backward(
    dy: Tensor,
    x: Tensor,
    inv: Tensor,
    block: List[int],
    gain: Optional[Tensor],
    has_bias: bool,
    round_mid: bool,
    mid: torch.dtype,
    inverse: bool,
    scale_dtype: torch.dtype,
    need_dx: bool,
    need_dgain: bool,
    need_dbias: bool,
    two_dx: bool,
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """``(dx, dgain, dbias, dx2)``: see ``csrc/rmsnorm_cpu.cpp``'s ``rmsnorm_backward``."""
    n = math.prod(block)
    rows = x.numel() // n if n else 0
    g1 = dy.float().contiguous().view(x.shape)
    need_dgain = need_dgain and gain is not None
    dx = torch.empty_like(x) if need_dx else None
    dx2 = torch.empty_like(x) if need_dx and two_dx else None
    p = torch.empty(x.shape, dtype=scale_dtype) if need_dgain else None
    g = None if gain is None else gain.reshape(n).float()  # a half gain widened (exact)
    step = _rows(n)
    for start in range(0, rows if (need_dx or need_dgain) else 0, step):
        stop = min(rows, start + step)
        h = x.reshape(rows, n)[start:stop].float()
        gb = g1.view(rows, n)[start:stop]
        invb = inv[start:stop]
        if inverse and g is not None:
            grad_rg = gb * h
            if p is not None:
                torch.mul(grad_rg, invb, out=p.view(rows, n)[start:stop])
            if dx is None:
                continue
            grad_h1 = gb * (invb * g)
            grad_r = (grad_rg * g).sum([-1], keepdim=True)
        else:
            if p is not None:
                y_mid = h * invb
                if round_mid:
                    y_mid = y_mid.to(mid).float()
                if scale_dtype == torch.float32:
                    torch.mul(gb, y_mid, out=p.view(rows, n)[start:stop])
                else:  # the scale multiplied in half precision: so do these products
                    dyb = dy.reshape(rows, n)[start:stop]
                    torch.mul(dyb, y_mid.to(scale_dtype), out=p.view(rows, n)[start:stop])
            if dx is None:
                continue
            grad_y = gb * g if g is not None else gb
            if round_mid:
                grad_y = grad_y.to(mid).float()
            grad_h1 = grad_y * invb
            grad_r = (grad_y * h).sum([-1], keepdim=True)
        grad_ms = (grad_r * -0.5).mul_(invb.pow(3)).div_(n)
        grad_h2 = grad_ms * (h * 2.0)
        if dx2 is not None:  # x's two paths apart: autograd adds them
            dx.view(rows, n)[start:stop].copy_(grad_h1)
            dx2.view(rows, n)[start:stop].copy_(grad_h2)
        else:
            dx.view(rows, n)[start:stop].copy_(grad_h1.add_(grad_h2))
    dgain = _sum_to(p, block) if p is not None else None
    dbias = _sum_to(g1, block) if need_dbias and has_bias else None
    return dx, dgain, dbias, dx2


def _sum_to(t: Tensor, block: List[int]) -> Tensor:
    """``at::sum_to(t, block)``, as autograd reduces a broadcast gradient: one sum over
    the leading dims, kept, then viewed as ``block``."""
    lead = list(range(t.dim() - len(block)))
    return t.sum(lead, keepdim=True).view(block) if lead else t


def register(schemas: Dict[str, str]) -> None:
    """Define the operator with this module's functions as its CPU kernels."""
    lib = torch.library.Library("rmsnorm_bridge", "DEF")  # noqa: TOR901
    for name, schema in schemas.items():
        lib.define(schema)
        lib.impl(name, forward if name == "rmsnorm_forward" else backward, "CPU")
    _LIBRARIES.append(lib)  # a Library deregisters its ops when collected


_LIBRARIES: List[torch.library.Library] = []
