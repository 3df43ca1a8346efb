"""The graph path: plain, differentiable ops that script, trace, compile and export.

``h * rsqrt(mean(h^2) + eps)``, as ``torch.rms_norm`` computes it; an ONNX
export's copy writes the order ONNX Runtime fuses into
SimplifiedLayerNormalization instead:
``Cast(fp32) -> Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div -> Mul(weight)``.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from rmsnorm_torch.kernels._resolve import Plan, is_dim


def _keepdim_shape(x: Tensor, dims: List[int]) -> List[int]:
    shape: List[int] = []
    for i in range(x.dim()):
        shape.append(1 if is_dim(i, dims, x.dim()) else x.shape[i])
    return shape


def _param_view(x: Tensor, dims: List[int]) -> List[int]:
    shape: List[int] = []
    for i in range(x.dim()):
        shape.append(x.shape[i] if is_dim(i, dims, x.dim()) else 1)
    return shape


def _mean_square(h: Tensor, plan: Plan) -> Tensor:
    dims = plan.dims
    if plan.k < 0:
        return h.pow(2).mean(dims, keepdim=True)
    if plan.trailing:
        # the statistic of the first k elements, then one kept axis per normalized dim:
        # no size is read, so a trace is right at every rank and batch (a reshape to
        # x's sizes records the traced ones)
        t = h.flatten(-len(dims)).narrow(-1, 0, plan.k).pow(2).mean([-1], keepdim=True)
        for _ in range(len(dims) - 1):
            t = t.unsqueeze(-1)
        return t
    else:
        kept: List[int] = []
        for i in range(h.dim()):
            if not is_dim(i, dims, h.dim()):
                kept.append(i)
        flat = h.permute(kept + dims).flatten(len(kept))
    part = flat.narrow(-1, 0, plan.k)
    return part.pow(2).mean([-1], keepdim=True).reshape(_keepdim_shape(h, dims))


def _compiling() -> bool:
    """True only while dynamo traces (torch.compile): decided per trace, not by a global."""
    if torch.jit.is_scripting():
        return False
    return torch.compiler.is_dynamo_compiling()


def _add_eps(t: Tensor, eps: float) -> Tensor:
    """``t + eps``. A tiny eps is added as a one-element tensor: the dynamo ONNX
    exporter's optimizer (onnxscript's ``add_0`` rule) takes a scalar constant within
    1e-8 of zero for zero and deletes the Add, so the paper preset's eps=1e-8 vanished
    and its all-zero rows came out NaN in ONNX Runtime."""
    if eps < 1e-7:
        return t + torch.full([1], eps, dtype=t.dtype, device=t.device)
    return t + eps


def _root(ms: Tensor) -> Tensor:
    """``sqrt(ms)`` whose gradient at ``ms == 0`` is 0, not inf (the spec's edge rule:
    an all-zero row has finite gradients with eps outside the root). Values are
    ``sqrt``'s own (a NaN ``ms`` gives 0 here; its row stays NaN through ``h``).
    Without autograd (inference, exports) it is the plain ``Sqrt``: three fewer
    ONNX nodes for ONNX Runtime to run."""
    if not ms.requires_grad:
        return torch.sqrt(ms)
    positive = ms > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, ms, torch.ones_like(ms))), 0.0)


def rms_norm_graph(
    x: Tensor,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    exporting: bool = False,
    stat: Optional[Tensor] = None,
) -> Tensor:
    """Apply the spec as plain ops (the formula: ``rmsnorm_core.RMSNormSpec``).

    ``stat``: the tensor the statistic ``mean(h^2)`` reads, where it is not ``x`` itself
    (the CPU operator's differentiable backward hands ``x``'s two uses over as two
    partial gradients: ``_cpu_norm.graph_backward``); it holds ``x``'s values.

    ``exporting`` (an ONNX export's copy): the graph ONNX Runtime fuses into one
    SimplifiedLayerNormalization. ``scale_multiplies="inverse"`` is written as
    ``(h * inv) * g`` (the fused kernel rounds its own way whichever order the graph
    has; unfused, the two orders differ by a float32 rounding of one product, within
    the float32 tolerance), and a half-precision ``before_scale`` multiplies the
    normalized value by ones before rounding it, so that ONNX Runtime still sees
    ``... Div -> Mul``; values are unchanged (x 1 is exact).
    """
    # Casts only where the dtype changes: the TorchScript-based ONNX exporter
    # would otherwise emit no-op Casts that cost ONNX Runtime a full copy.
    h = x if x.dtype == plan.compute else x.to(plan.compute)
    if stat is None:
        ms = _mean_square(h, plan)
    else:
        ms = _mean_square(stat if stat.dtype == plan.compute else stat.to(plan.compute), plan)
    if plan.scale_inverse and weight is not None and not exporting:
        # flax's h * (inv * g). An ONNX export's copy writes the normalized order below
        # instead: ONNX Runtime fuses only that into SimplifiedLayerNormalization (3x
        # faster on [4096, 4096]) and then computes its own way (its kernel divides by the
        # root), so no exported graph keeps either float32 order where it is fused
        if plan.eps_outside:
            inv = 1.0 / _add_eps(_root(ms), plan.eps)
        else:
            inv = torch.rsqrt(_add_eps(ms, plan.eps))
        return _finish(x, plan, h * (inv * _gain(x, plan, weight)), None, bias)
    if plan.eps_outside:
        y = h / _add_eps(_root(ms), plan.eps)
    elif exporting and not _compiling():
        # the pattern ONNX Runtime fuses into SimplifiedLayerNormalization (the
        # TorchScript-based exporter traces without dynamo); ORT computes its own way
        y = h / torch.sqrt(_add_eps(ms, plan.eps))
    else:
        # the spec's rsqrt-multiply: what torch.rms_norm and Hugging Face compute,
        # so eager, scripted and compiled calls round like the fused path (_fused.py);
        # T5 multiplies x itself, promoted (Plan.split_dx): the same values
        y = (x if plan.split_dx else h) * torch.rsqrt(_add_eps(ms, plan.eps))
    if plan.before_scale and y.dtype != plan.mid:
        if exporting and plan.trailing:
            y = y * torch.ones([x.shape[d] for d in plan.dims], dtype=y.dtype, device=y.device)
        y = y.to(plan.mid)
    if weight is not None and not exporting and half_scale(plan, y.dtype, weight, bias):
        # T(h * inv) * w in w's own half precision: the same value (one rounding of an
        # exact product), and autograd then forms dweight from half-precision products
        # as Llama's `weight * hidden_states.to(input_dtype)` (and the fused op) do
        if plan.trailing:
            return y * weight
        return y * weight.reshape(_param_view(x, plan.dims))
    return _finish(x, plan, y, weight, bias)


def half_scale(
    plan: Plan, y_dtype: torch.dtype, weight: Optional[Tensor], bias: Optional[Tensor]
) -> bool:
    """Whether the scale multiplies in the weight's half precision: ``before_scale`` has
    rounded ``h * inv`` to the weight's own half dtype, which is also the output dtype,
    with no offset and no bias (Llama's half-precision modules)."""
    return (
        weight is not None
        and bias is None
        and plan.before_scale
        and not plan.scale_inverse
        and plan.scale_offset == 0.0
        and y_dtype != torch.float32
        and weight.dtype == y_dtype
        and plan.out_dtype == y_dtype
    )


def _gain(x: Tensor, plan: Plan, weight: Tensor) -> Tensor:
    """``g = offset + w`` in the scale dtype, shaped to broadcast against ``x``. A
    trailing block broadcasts it as it is; ONNX Runtime's fusion wants the scale as
    the plain 1-D (or block-shaped) initializer."""
    g = weight if weight.dtype == plan.scale else weight.to(plan.scale)
    if plan.scale_offset != 0.0:
        g = g + plan.scale_offset
    return g if plan.trailing else g.reshape(_param_view(x, plan.dims))


def _finish(
    x: Tensor, plan: Plan, y: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]
) -> Tensor:
    """``y * g + b``, cast to the output dtype."""
    if weight is not None:
        y = y * _gain(x, plan, weight)
    if bias is not None:
        b = bias if bias.dtype == plan.scale else bias.to(plan.scale)
        y = y + (b if plan.trailing else b.reshape(_param_view(x, plan.dims)))
    return y if y.dtype == plan.out_dtype else y.to(plan.out_dtype)
