"""The eager fast path: the row-blocked kernel (``_blocked.py``) with its own backward.

Forward saves only the float32 inverse rms per row (not an fp32 copy of
``x``); backward recomputes ``h * inv`` per block and accumulates the scale
gradient in float32.

Which path runs is decided from the input and the plan alone (see
:func:`takes_blocked`), never from process-global state: a plain CPU tensor
on the kernel's layout takes it; a tensor being traced (dynamo, export,
FX), a tensor subclass (DTensor, FakeTensor), a tensor under a
``torch.func`` transform or carrying a forward-mode tangent takes the graph
path, which supports everything autograd does. A backward asked to build a
graph (``create_graph=True``, double backward) is computed by differentiating
the graph path, so gradients of any order exist at any size.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from rmsnorm_torch.kernels._blocked import applies, blocked_forward, fits, needs_grad
from rmsnorm_torch.kernels._graph import rms_norm_graph
from rmsnorm_torch.nn._resolve import Plan


def _plain(t: Optional[Tensor]) -> bool:
    """A real, untransformed tensor (or absent): no subclass, no functorch wrapper, no tangent."""
    if t is None:
        return True
    if type(t) is not Tensor and type(t) is not torch.nn.Parameter:
        return False
    if torch._C._functorch.is_functorch_wrapped_tensor(t):
        return False
    return fwAD._current_level < 0 or fwAD.unpack_dual(t).tangent is None


def takes_blocked(
    x: Tensor,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    any_size: bool = False,
) -> bool:
    """Whether this eager call runs the blocked kernel (module docstring); ``any_size``
    (``use_kernel("blocked")``) drops the size threshold, nothing else."""
    if torch.compiler.is_dynamo_compiling() or torch.jit.is_tracing():
        return False
    layout = fits(x, plan) if any_size else applies(x, plan)
    return layout and _plain(x) and _plain(weight) and _plain(bias)


class _BlockedRMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], plan: Plan) -> Any:
        return blocked_forward(x, plan, weight, bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
        x, weight, bias, plan = inputs
        ctx.save_for_backward(x, weight, bias, output[1])
        ctx.plan = plan
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx: Any, dy: Tensor, _dinv: Optional[Tensor]) -> Any:
        x, weight, bias, inv = ctx.saved_tensors
        plan = ctx.plan
        if torch.is_grad_enabled():  # create_graph=True: a backward that is itself differentiable
            return (*_graph_backward(x, weight, bias, plan, dy, ctx.needs_input_grad), None)
        from rmsnorm_torch.kernels._eager_backward import blocked_backward

        n = math.prod(x.shape[x.dim() - len(plan.dims) :])
        dx, dw, db = blocked_backward(
            x, dy, weight, bias, inv, n, plan.scale_offset, ctx.needs_input_grad
        )
        return dx, dw, db, None


def _graph_backward(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    plan: Plan,
    dy: Tensor,
    needs: Tuple[bool, ...],
) -> Tuple[Optional[Tensor], ...]:
    """Gradients as the graph path's autograd computes them, differentiable in turn
    (the saved tensors are the inputs themselves, so higher orders reach them)."""
    params = (x, weight, bias)
    wanted = [t for t, need in zip(params, needs[:3], strict=True) if need and t is not None]
    with torch.enable_grad():
        y = rms_norm_graph(x, plan, weight, bias)
        grads = iter(torch.autograd.grad(y, wanted, dy, create_graph=True))
    pairs = zip(params, needs[:3], strict=True)
    return tuple(next(grads) if need and t is not None else None for t, need in pairs)


def blocked_rms_norm(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]
) -> Tensor:
    """The blocked kernel (the caller checked :func:`takes_blocked`); autograd only if needed."""
    if not needs_grad(x, weight, bias):
        return blocked_forward(x, plan, weight, bias)[0]
    return _BlockedRMSNorm.apply(x, weight, bias, plan)[0]
