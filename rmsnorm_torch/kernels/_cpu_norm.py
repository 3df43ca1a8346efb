"""The CPU operator under autograd: one native call forward, one backward.

Where the operator is native, one call of ``rmsnorm_bridge::rmsnorm`` computes a call
with or without autograd: its autograd node is C++ (``csrc/rmsnorm_autograd.cpp``), so a
recorded call costs no Python beyond the call. The pure-Python fallback's node is
:class:`_CpuNorm` here, the same node in Python. Either saves ``x`` (a half-precision
``x`` as a copy, as the graph path saves its widened copy) and the float32 inverse rms
per row; backward is the operator's ``rmsnorm_backward``, which computes what autograd
computes from the graph path's ops (``csrc/rmsnorm_cpu.cpp``), so gradients are the graph
path's, and so torch's and each preset's upstream's, bit for bit. A backward asked to
build a graph (``create_graph=True``, double backward), or given a ``dy`` that is not
dense and contiguous (whose layout ATen's reductions follow), differentiates the graph
path instead (:func:`graph_backward`; the native node reaches it through the operator
``rmsnorm_graph_backward``, registered here), so gradients of any order exist at any size.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_torch.kernels import _cpu_op
from rmsnorm_torch.kernels._graph import half_scale, rms_norm_graph
from rmsnorm_torch.kernels._resolve import Plan

__all__ = [
    "cpu_norm",
    "cpu_norm_backward",
    "gain_of",
    "needs_grad",
    "norm_arguments",
    "norm_op",
    "op_arguments",
    "plan_handle",
    "round_mid",
    "two_paths",
]


def needs_grad(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """Whether autograd must record a call on these tensors (``RMSNorm``'s hot path
    writes the same test inline)."""
    return torch.is_grad_enabled() and (
        x.requires_grad
        or (weight is not None and weight.requires_grad)
        or (bias is not None and bias.requires_grad)
    )


def gain_of(plan: Plan, weight: Optional[Tensor]) -> Optional[Tensor]:
    """The operator's gain: ``w`` itself without an offset (the operator widens a half
    ``w`` to float32 itself, exactly, as the graph path's ``f(w)``), else ``offset + w``
    formed in float32 as the graph path forms it (``_graph._gain``)."""
    if weight is None or plan.scale_offset == 0.0:
        return weight
    g = weight if weight.dtype == torch.float32 else weight.to(torch.float32)
    return g + plan.scale_offset


def round_mid(plan: Plan) -> bool:
    """Whether ``h * inv`` rounds to ``plan.mid`` before the scale (the graph's rule)."""
    return op_arguments(plan)[0]


def op_arguments(plan: Plan) -> Tuple[bool, torch.dtype, torch.dtype, bool]:
    """The operator forward's arguments after ``eps`` (the schema's order:
    ``_cpu_op.SCHEMAS``): ``round_mid`` (:func:`round_mid`), ``mid``, ``out_dtype``,
    ``inverse``."""
    rounds = plan.before_scale and plan.mid != torch.float32 and not plan.scale_inverse
    return rounds, plan.mid, plan.out_dtype, plan.scale_inverse


_PLANS: List[Plan] = []  # by handle: the plans of the calls the native operator has run
_HANDLES: Dict[Tuple[Any, ...], int] = {}
_GRAPH_BACKWARD: List[torch.library.Library] = []  # the kernel's registration, kept alive
_REGISTERING = threading.Lock()


def plan_handle(plan: Plan) -> int:
    """A handle for ``plan`` less its eps (which the node keeps itself), that the native
    node hands back to :func:`graph_backward` for a ``create_graph`` backward or another
    ``dy``. One per distinct plan structure, kept for the process: a plan is a few
    fields, and a process meets few (about one per spec x dtype x rank), however many
    eps values its modules take."""
    shape = plan._replace(eps=0.0)
    key = (tuple(shape.dims),) + tuple(shape)[1:]
    handle = _HANDLES.get(key)
    if handle is None:
        with _REGISTERING:
            handle = _HANDLES.get(key)
            if handle is None:
                _PLANS.append(shape)
                handle = _HANDLES[key] = len(_PLANS) - 1
    return handle


def _graph_backward_kernel(
    dy: Tensor, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], eps: float,
    handle: int, need_x: bool, need_weight: bool, need_bias: bool,
) -> Tuple[Tensor, ...]:  # fmt: skip
    """``rmsnorm_graph_backward``: :func:`graph_backward`'s ``(dx, dx2, dweight, dbias)``,
    each one not asked for an empty stand-in (an operator returns tensors; a fixed tuple of
    them is what vmap's fallbacks, under ``is_grads_batched``, can batch)."""
    plan = _PLANS[handle]._replace(eps=eps)
    grads = graph_backward(x, weight, bias, plan, dy, (need_x, need_weight, need_bias))
    return tuple(dy.new_empty(0) if g is None else g for g in grads)


def norm_op() -> Any:
    """``rmsnorm_bridge::rmsnorm``'s overload, with the kernel its ``create_graph``
    backward calls registered once (the native operator only)."""
    if not _GRAPH_BACKWARD:
        with _REGISTERING:
            if not _GRAPH_BACKWARD:
                _cpu_op.ensure_loaded()
                library = torch.library.Library("rmsnorm_bridge", "IMPL")  # noqa: TOR901
                kernel = _graph_backward_kernel
                library.impl("rmsnorm_graph_backward", kernel, "CompositeImplicitAutograd")
                _GRAPH_BACKWARD.append(library)
    return _cpu_op.ops().rmsnorm.default


def norm_arguments(
    plan: Plan, x: Tensor, weight: Optional[Tensor], has_bias: bool
) -> Tuple[Any, ...]:
    """``rmsnorm``'s arguments after ``eps`` (its schema's order): ``offset``, then
    :func:`op_arguments`, then ``two_dx`` (:func:`two_paths`), ``half_scale`` (the gain's
    gradient products in the weight's half dtype: ``_graph.half_scale``) and the plan's
    :func:`plan_handle`."""
    half = weight is not None and not has_bias and half_scale(plan, plan.mid, weight, None)
    return (plan.scale_offset, *op_arguments(plan), two_paths(x, plan), half, plan_handle(plan))


def _forward(x: Tensor, plan: Plan, gain: Optional[Tensor], bias: Optional[Tensor]) -> Any:
    block = list(x.shape[-len(plan.dims) :])
    return _cpu_op.ops().rmsnorm_forward.default(
        x, block, gain, bias, plan.eps, *op_arguments(plan)
    )


def two_paths(x: Tensor, plan: Plan) -> bool:
    """Whether ``x`` reaches the graph path's result along two autograd paths, the
    statistic's and the product's: a float32 ``x`` (its widening is no op, so both use
    ``x`` itself) or T5's half-precision ``x`` (``Plan.split_dx``). Autograd then adds
    the two partial gradients one at a time into ``x``'s gradient, after any gradient
    already there (a residual stream's), so the backward hands them over apart; a half
    ``x`` widened once has one path, and one summed gradient."""
    return x.dtype == torch.float32 or plan.split_dx


def cpu_norm_backward(
    dy: Tensor, x: Tensor, inv: Tensor, plan: Plan, gain: Optional[Tensor], has_bias: bool,
    scale_dtype: torch.dtype, needs: Tuple[bool, bool, bool],
) -> Tuple[Optional[Tensor], ...]:  # fmt: skip
    """``(dx, dgain, dbias, dx2)``: ``dx`` in ``x``'s dtype (the product's partial
    gradient where :func:`two_paths`, then ``dx2`` the statistic's, else the sum and
    ``dx2`` None), ``dgain`` in ``scale_dtype`` (float32, or the weight's half dtype where
    the graph path scales in it: ``_graph.half_scale``), ``dbias`` in float32."""
    block = list(x.shape[-len(plan.dims) :])
    return _cpu_op.ops().rmsnorm_backward(
        dy, x, inv, block, gain, has_bias, round_mid(plan), plan.mid, plan.scale_inverse,
        scale_dtype, needs[0], needs[1], needs[2], two_paths(x, plan),
    )  # fmt: skip


def _as_param(grad: Optional[Tensor], p: Optional[Tensor], need: bool) -> Optional[Tensor]:
    if grad is None or p is None or not need:
        return None
    return grad.to(p.dtype).reshape(p.shape)


class _CpuNorm(torch.autograd.Function):
    """The pure-Python fallback's node, the same as the native one (its inputs, what it
    saves and why: ``csrc/rmsnorm_autograd.cpp``): the bias, the weight, ``x``, and
    ``x`` again where it has two paths (:func:`two_paths`)."""

    @staticmethod
    def forward(
        bias: Optional[Tensor],
        weight: Optional[Tensor],
        x: Tensor,
        x_stat: Optional[Tensor],
        plan: Plan,
    ) -> Any:
        return _forward(x, plan, gain_of(plan, weight), bias)

    @staticmethod
    def setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> None:
        bias, weight, x, _, plan = inputs
        ctx.save_for_backward(x, weight if x.requires_grad else None, output[1])
        ctx.weight = None if weight is None else (weight.shape, weight.dtype, weight.device)
        ctx.bias = None if bias is None else (bias.shape, bias.dtype, bias.device)
        ctx.plan = plan
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx: Any, dy: Tensor, _dinv: Optional[Tensor]) -> Any:
        x, weight, inv = ctx.saved_tensors
        plan = ctx.plan
        need_b, need_w, need_x, two, _ = ctx.needs_input_grad
        weight = _stand_in(ctx.weight, need_w) if weight is None else weight
        if torch.is_grad_enabled() or not dy.is_contiguous():
            # create_graph=True, or a dy whose layout ATen's reductions follow
            bias = _stand_in(ctx.bias, need_b)
            dx, dx2, dw, db = graph_backward(x, weight, bias, plan, dy, (need_x, need_w, need_b))
            return db, dw, dx, dx2 if two else None, None
        has_bias = ctx.bias is not None
        scale_dtype = torch.float32
        if weight is not None and not has_bias and half_scale(plan, plan.mid, weight, None):
            scale_dtype = weight.dtype
        dx, dg, db, dx2 = cpu_norm_backward(
            dy, x, inv, plan, gain_of(plan, weight), has_bias, scale_dtype,
            (need_x, need_w and weight is not None, need_b and has_bias),
        )  # fmt: skip
        if db is not None and need_b and has_bias:
            shape, dtype, _ = ctx.bias
            db = db.to(dtype).reshape(shape)
        return (
            db if need_b else None,
            _as_param(dg, weight, need_w),
            dx if need_x else None,
            dx2 if need_x and two else None,
            None,
        )


def _stand_in(meta: Optional[Tuple[Any, ...]], requires_grad: bool) -> Optional[Tensor]:
    """A parameter no gradient reads the values of, from its shape, dtype and device."""
    if meta is None:
        return None
    shape, dtype, device = meta
    return torch.zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def graph_backward(
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    plan: Plan,
    dy: Tensor,
    needs: Tuple[bool, ...],
) -> Tuple[Optional[Tensor], ...]:
    """``(dx, dx2, dweight, dbias)`` as the graph path's autograd computes them, from
    ``dy`` as it is laid out; called in grad mode (a ``create_graph`` backward), they are
    differentiable in turn (the recomputed graph reads ``x`` and the parameters
    themselves, so higher orders reach them). Where :func:`two_paths`, ``x`` enters that
    graph as two views, the product's and the statistic's, and ``dx``/``dx2`` are their
    partial gradients (autograd adds them into ``x``'s gradient as the graph path's own
    backward does); elsewhere ``dx`` is the whole gradient and ``dx2`` None."""
    split = needs[0] and two_paths(x, plan)
    create = torch.is_grad_enabled()
    with torch.enable_grad():
        # views, so that this inner backward runs no hook registered on x or the weight
        # themselves (those run once, when the outer backward hands them their gradients)
        xp = x.view_as(x)
        xs = x.view_as(x) if split else None
        wp = None if weight is None else weight.view_as(weight)
        y = rms_norm_graph(xp, plan, wp, bias, stat=xs)
        inputs = (xp, xs, wp, bias)
        flags = (needs[0], split, needs[1], needs[2])
        wanted = [t for t, need in zip(inputs, flags, strict=True) if need and t is not None]
        grads = iter(torch.autograd.grad(y, wanted, dy, create_graph=create))
    pairs = zip(inputs, flags, strict=True)
    return tuple(next(grads) if need and t is not None else None for t, need in pairs)


def cpu_norm(x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]) -> Tensor:
    """The CPU operator on one call (``_kernel_choice.cpu_op_fits`` holds); autograd only
    if needed."""
    if _cpu_op.native():
        block = list(x.shape[-len(plan.dims) :])
        arguments = norm_arguments(plan, x, weight, bias is not None)
        return norm_op()(x, block, weight, bias, plan.eps, *arguments)
    if not needs_grad(x, weight, bias):
        return _forward(x, plan, gain_of(plan, weight), bias)[0]
    if x.is_inference():  # autograd cannot save it: the graph path saves what it needs
        return rms_norm_graph(x, plan, weight, bias)
    if not (two_paths(x, plan) and x.requires_grad):
        # the graph path saves x itself only there (else a widened copy, or a product),
        # so an in-place update of x between forward and backward is allowed (torch's and
        # each upstream's norm too); the operator saves a copy of its own for the same
        # reason, connected to x (higher-order gradients reach x through it)
        x = x.clone()
    if weight is not None and x.requires_grad:
        # likewise the weight, saved where x's gradient reads it: the graph path (and
        # Gemma's norm) saves ``offset + w`` or a widened copy, a new tensor, except for
        # Llama's half-precision scale (``w`` itself)
        scales_in_half = bias is None and half_scale(plan, plan.mid, weight, None)
        if plan.scale_offset != 0.0 or (weight.dtype != torch.float32 and not scales_in_half):
            weight = weight.clone()
    return _CpuNorm.apply(bias, weight, x, x if two_paths(x, plan) else None, plan)[0]
