"""The fused residual variant in eager mode: one pass forward, one backward.

Forward (``_blocked.blocked_residual_forward``) writes ``s = x + residual``
and ``y = norm(s)`` block by block. Backward: with ``ds`` the gradient that
reaches the returned ``s`` from downstream, ``dsum = norm_backward(dy) + ds``
in ``s``'s dtype, and ``dx = dsum`` in ``x``'s dtype, ``dresidual = dsum`` in
the residual's: what autograd gives the unfused ``add``, cast and norm. It
runs where the plain blocked kernel runs (``_eager.takes_blocked`` on ``x``,
the residual a plain contiguous tensor too); a backward asked to build a graph
differentiates the unfused graph path instead.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_torch.kernels._blocked import blocked_residual_forward, needs_grad
from rmsnorm_torch.kernels._eager import _plain, takes_blocked
from rmsnorm_torch.kernels._graph import rms_norm_graph
from rmsnorm_torch.nn._resolve import Plan


def _unfused(
    x: Tensor, residual: Tensor, store: torch.dtype, plan: Plan, weight: Any, bias: Any
) -> Tuple[Tensor, Tensor]:
    wide = torch.promote_types(store, residual.dtype)
    s = torch.add(x.to(wide), residual.to(wide)).to(store)
    return rms_norm_graph(s, plan, weight, bias), s


class _BlockedResidual(torch.autograd.Function):
    @staticmethod
    def forward(
        x: Tensor, residual: Tensor, weight: Any, bias: Any, plan: Plan, store: torch.dtype
    ) -> Any:
        return blocked_residual_forward(x, residual, store, plan, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
        x, residual, weight, bias, plan, store = inputs
        ctx.save_for_backward(x, residual, weight, bias, output[1], output[2])
        ctx.plan, ctx.store = plan, store
        ctx.mark_non_differentiable(output[2])

    @staticmethod
    def backward(ctx: Any, dy: Optional[Tensor], ds: Optional[Tensor], _dinv: Any) -> Any:
        x, residual, weight, bias, s, inv = ctx.saved_tensors
        plan, needs = ctx.plan, ctx.needs_input_grad
        if torch.is_grad_enabled():  # create_graph=True: differentiate the unfused graph
            wanted = [t for t, n in zip((x, residual, weight, bias), needs[:4], strict=True) if n]
            with torch.enable_grad():
                y, s_g = _unfused(x, residual, ctx.store, plan, weight, bias)
                outs = [(y, dy), (s_g, ds)]
                outs = [(o, g) for o, g in outs if g is not None]
                grads = iter(
                    torch.autograd.grad(
                        [o for o, _ in outs], wanted, [g for _, g in outs], create_graph=True
                    )
                )
            return (*(next(grads) if n else None for n in needs[:4]), None, None)
        from rmsnorm_torch.kernels._eager_backward import blocked_backward

        n = math.prod(s.shape[s.dim() - len(plan.dims) :])
        need_sum = needs[0] or needs[1]
        dsum, dw, db = None, None, None
        if dy is not None:
            dsum, dw, db = blocked_backward(
                s, dy, weight, bias, inv, n, plan.scale_offset, (need_sum, needs[2], needs[3])
            )
        if ds is not None and need_sum:
            dsum = ds.to(s.dtype) if dsum is None else dsum.add_(ds)
        dx = None if dsum is None or not needs[0] else dsum.to(x.dtype)
        dr = None if dsum is None or not needs[1] else dsum.to(residual.dtype)
        return dx, dr, dw, db, None, None


def takes_fused(
    x: Tensor,
    residual: Tensor,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    any_size: bool = False,
) -> bool:
    """Whether the fused kernel computes this residual call (see the module docstring)."""
    return (
        _plain(residual)
        and residual.is_contiguous()
        and residual.device == x.device
        and takes_blocked(x, plan, weight, bias, any_size)
    )


def fused_residual(
    x: Tensor,
    residual: Tensor,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    store: torch.dtype,
) -> Tuple[Tensor, Tensor]:
    """``(y, s)`` through the fused kernel (the caller checked :func:`takes_fused`)."""
    if not (needs_grad(x, weight, bias) or (torch.is_grad_enabled() and residual.requires_grad)):
        y, s, _ = blocked_residual_forward(x, residual, store, plan, weight, bias)
        return y, s
    y, s, _ = _BlockedResidual.apply(x, residual, weight, bias, plan, store)
    return y, s
