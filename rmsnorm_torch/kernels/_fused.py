"""torch's own ``torch.rms_norm`` where it computes exactly the spec: one op per call.

``torch.rms_norm(x, shape, w, eps)`` computes, on the CPU and for every input
dtype, ``T(f(x) * rsqrt(mean(f(x)^2) + eps) * f(w))`` (``f``: float32, the op's
accumulation type; float64 for float64 inputs) with a weight of float32 or of
``x``'s own dtype, and ``T(f(x) * rsqrt(mean(f(x)^2) + eps))`` without one:
the spec's formula (``rmsnorm_core.RMSNormSpec``, steps 1-5) with one rounding.
``parity_tests/test_torch_fused.py`` checks that bit for bit against the graph
path forced with ``use_kernel("graph")`` and against ``torch.nn.RMSNorm``.

So where a call's plan is a trailing block, eps inside the root, the whole
block, no bias, and the compute dtype torch's own, every entry point (module,
function, scripted module) runs the op itself: plus, for ``before_scale``,
the weight multiply; with an offset, the float32 gain ``w + offset`` formed
first. That is the decode-shape hot path: one C++ call where the graph path
makes eight. A weight whose dtype is neither float32 nor ``x``'s, a float64
input with a float32 weight, CUDA tensors (the Triton kernel's, with its own
tests) and calls of :func:`limit` elements or more (the blocked kernel keeps
each block in cache) keep the other paths. Written for TorchScript.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional

import torch
from torch import Tensor

from rmsnorm_torch.kernels._graph import rms_norm_graph
from rmsnorm_torch.kernels._resolve import Plan


class FusedKind(Enum):
    """How the fused op computes a call (an enum TorchScript compiles).

    Attributes:
        UNFIT: it does not compute this plan exactly: another path runs it.
        DIRECT: ``torch.rms_norm(x, shape, weight, eps)`` is the whole call.
        UPCAST: ``cast_out(torch.rms_norm(f(x), shape, offset + f(w), eps))``.
        BEFORE_SCALE: ``cast_out(torch.rms_norm(x, shape, None, eps) * g)``; T5's order
            (``Plan.split_dx``) under autograd records the graph path instead, whose
            gradient of ``x`` rounds as T5's does.
    """

    UNFIT = 0
    DIRECT = 1
    UPCAST = 2
    BEFORE_SCALE = 3


def limit() -> int:
    """Contiguous calls of this many elements or more do not take the fused op: the
    native CPU operator takes them where it is built and fits (it takes smaller ones
    too), the graph path elsewhere.

    Measured (no grad, fused time over the blocked kernel's, 1 and 2 threads, rows of
    1024 / 4096 / 16384): 64 Ki elements 0.41-0.64, 128 Ki 0.49-0.86, 192 Ki 0.60-1.02;
    at 256 Ki torch's bfloat16 kernel falls off a cliff (9-11x the blocked kernel's
    time with one thread) while float32 reaches parity (0.85-0.96).
    """
    return 196608


def fused_kind(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]
) -> FusedKind:
    """How the fused op computes this call exactly, or ``FusedKind.UNFIT``; the size
    limit is the caller's."""
    if (
        x.device.type != "cpu"
        or not plan.trailing
        or plan.k >= 0
        or plan.eps_outside
        or plan.scale_inverse
        or bias is not None
        or plan.in_dtype != x.dtype
        or plan.mid != plan.in_dtype  # output_dtype="param" rounds elsewhere: the graph's
    ):
        return FusedKind.UNFIT
    if x.is_complex():  # a complex plan is torch's own arithmetic (_resolve.complex_unfit)
        return FusedKind.DIRECT
    w: Optional[torch.dtype] = None
    if weight is not None:
        w = weight.dtype
    if x.dtype == torch.float64:
        if plan.compute == torch.float64 and plan.scale_offset == 0.0:
            if w is None or w == torch.float64:
                return FusedKind.DIRECT
        return FusedKind.UNFIT
    if x.dtype not in [torch.float16, torch.bfloat16, torch.float32]:
        return FusedKind.UNFIT
    if plan.compute != torch.float32:
        return FusedKind.UNFIT
    if w is not None and w != torch.float32 and w != x.dtype:
        return FusedKind.UNFIT
    if plan.before_scale and x.dtype != torch.float32:
        return FusedKind.BEFORE_SCALE
    if plan.scale_offset == 0.0 and (w is None or w == x.dtype) and plan.out_dtype == x.dtype:
        return FusedKind.DIRECT
    return FusedKind.UPCAST


def _gain(weight: Tensor, offset: float) -> Tensor:
    """``g = offset + f(w)``, formed in float32 (the spec's step 4)."""
    if offset == 0.0 and weight.dtype == torch.float32:
        return weight
    g = weight.float()
    if offset != 0.0:
        g = g + offset
    return g


def fused_norm(x: Tensor, plan: Plan, kind: FusedKind, weight: Optional[Tensor]) -> Tensor:
    """The call on the fused op, as :func:`fused_kind` said it computes it."""
    shape = [x.shape[d] for d in plan.dims]
    if kind == FusedKind.DIRECT:
        return torch.rms_norm(x, shape, weight, plan.eps)
    if kind == FusedKind.UPCAST:
        g: Optional[Tensor] = None
        if weight is not None:
            g = _gain(weight, plan.scale_offset)
        y = torch.rms_norm(x.float(), shape, g, plan.eps)
    elif plan.split_dx and x.requires_grad and torch.is_grad_enabled():
        # T5's gradient rounds two partial gradients of x (Plan.split_dx); the fused op
        # widens x once, so autograd records the graph path (the same forward bits)
        return rms_norm_graph(x, plan, weight, None)
    else:
        y = torch.rms_norm(x, shape, None, plan.eps)
        if weight is not None:  # T(h) * w rounds once, like f(T(h)) * f(w) then cast_out
            y = y * (weight if plan.scale_offset == 0.0 else _gain(weight, plan.scale_offset))
    if y.dtype != plan.out_dtype:
        y = y.to(plan.out_dtype)
    return y
