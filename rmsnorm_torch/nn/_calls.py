"""``RMSNorm``'s eager forward and its plan cache.

A call's plan (``kernels/_resolve.py``) and its kernel (``kernels/_kernel_choice.decide``)
are resolved once per cache key, and the key holds everything they depend on: the
input's dtype, rank, device, layout and size class (each kernel threshold), the
presence, class, dtype, shape, layout and device of ``weight`` and ``bias``, the context's
``use_kernel`` choice and whether autograd must record the call (the grad mode and the
tensors' ``requires_grad``). The spec is the cache's owner: setting it, or moving the
parameters (``_apply``), starts a new cache. Beside the keyed plans the cache keeps
``direct``: per grad need and rank of ``x``, the last plain CPU call below ``FUSED_LIMIT``
that ``torch.rms_norm`` or the CPU operator computes (the decode-shape hot path), with
what that decision rests on (``x``'s dtype, the weight's class, dtype and shape (its
shape read only where the op called refuses any other itself: ``torch.rms_norm`` alone,
the operator), no bias, the ``"auto"`` choice, and a contiguous ``x`` unless the spec is
torch's formula run by the fused op, which gives any ``x`` torch's layout; for the
operator, plain tensors: no ``torch.func`` transform, no tangent), all of it compared on
every call before the op runs: it skips building and hashing the key, never a check.
What no key can hold is checked on every
call: the normalized sizes (by ``torch.rms_norm`` itself on the fused path, by
``_check_input`` elsewhere) and, for the custom kernels, whether the input is under a
``torch.func`` transform or carries a tangent. Traced, compiled and exported calls,
tensor subclasses and ``torch.fx`` proxies take the uncached, checked path.
"""

from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core import RMSNormError
from rmsnorm_core.rules import Recipe
from rmsnorm_torch.kernels._cpu_norm import cpu_norm, norm_arguments, norm_op
from rmsnorm_torch.kernels._cpu_op import native
from rmsnorm_torch.kernels._fused import FusedKind, fused_kind, fused_norm
from rmsnorm_torch.kernels._kernel_choice import (
    _CHOICE,
    FUSED_LIMIT,
    Kernel,
    torch_layout,
)
from rmsnorm_torch.kernels._plain import all_plain, plain
from rmsnorm_torch.kernels._resolve import OnnxExport, Plan, resolve
from rmsnorm_torch.nn._arguments import check_tensor
from rmsnorm_torch.nn._functional import eager_decide, execute, norm
from rmsnorm_torch.nn._traced import fx_call, traced_norm

__all__ = ["CallCache", "CallCacheOwner", "CallEntry", "forward_eager"]

_OFF = OnnxExport.OFF
_FUSED = Kernel.FUSED
_CPU_OP = Kernel.CPU_OP
_DIRECT = FusedKind.DIRECT
_CUSTOM = (Kernel.CPU_OP, Kernel.TRITON)
_STRIDED = torch.strided


class CallEntry(NamedTuple):
    """One cached call: its kernel, the fused op's kind, block shape and eps, the plan,
    the recipe, and the native CPU operator's overload and arguments after eps where it
    runs the call (unpacked in one step on the hot path)."""

    kernel: Kernel
    fused: FusedKind
    shape: List[int]
    eps: float
    plan: Plan
    recipe: Recipe
    op: Any  # ``norm_op()``, or None: no native operator call
    op_args: Tuple[Any, ...]  # ``norm_arguments``


class Direct(NamedTuple):
    """A call that the fused op or the CPU operator computes, and what that rests on
    (``CallCache.direct``)."""

    dtype: torch.dtype
    weight_class: type
    weight_dtype: Optional[torch.dtype]
    weight_shape: Optional[torch.Size]
    fused: FusedKind
    shape: List[int]
    eps: float
    plan: Plan
    any_layout: bool  # torch's layout (``torch_layout``): a non-contiguous x takes it too
    op: Any  # the CPU operator's overload (``norm_op``), or None: the fused op
    op_args: Tuple[Any, ...]  # the operator's arguments after eps (``norm_arguments``)


class CallCache(Dict[Any, CallEntry]):
    """A module's plans by key (module docstring), and ``direct``: indexed by whether
    autograd must record the call, then by rank of ``x``, the last plain call that the
    fused op or the CPU operator computes."""

    __slots__ = ("direct",)

    def __init__(self) -> None:
        super().__init__()
        self.direct: Tuple[Dict[int, Direct], Dict[int, Direct]] = ({}, {})


class CallCacheOwner:
    """The plan cache's life in a module (a base of ``RMSNorm`` before ``nn.RMSNorm``):
    a new cache where the plans' inputs change, and none in a pickle or deep copy, so a
    loaded module, from this version or an older one, starts its own."""

    @torch.jit.unused
    def _new_calls(self) -> None:
        """An empty plan cache: the old one's plans are void."""
        object.__setattr__(self, "_calls", CallCache())

    def __getstate__(self) -> Dict[str, Any]:
        """The module's state less the plan cache."""
        state = self.__dict__.copy()
        state.pop("_calls", None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]  # nn.Module's, next in the MRO
        self._new_calls()


def _remember_direct(
    calls: CallCache, x: Tensor, weight: Optional[Tensor], entry: CallEntry, grad: bool
) -> None:
    w_dtype = None if weight is None else weight.dtype
    w_shape = None if weight is None else weight.shape
    any_layout = entry.op is None and torch_layout(entry.plan, None)
    calls.direct[grad][x.dim()] = Direct(
        x.dtype, type(weight), w_dtype, w_shape, entry.fused, entry.shape, entry.eps, entry.plan,
        any_layout, entry.op, entry.op_args,
    )  # fmt: skip


def _check_parameters(weight: Any, bias: Any) -> None:
    # what a user may assign by hand: a sparse Parameter or a plain tensor of another layout
    check_tensor("weight", weight, optional=True)
    check_tensor("bias", bias, optional=True)


def _build(module: Any, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> CallEntry:
    module._check_input(x)
    _check_parameters(weight, bias)
    if bias is not None and not module._spec.use_bias:  # assigned after it was built
        raise RMSNormError(
            "bias: this module holds a bias parameter but its spec has use_bias=False; "
            "set m.bias = None, or build the module with a spec with use_bias=True"
        )
    recipe = module._recipe_for(x)
    plan = resolve(recipe, x, weight, bias, x.dtype)
    kernel = eager_decide(x, plan, weight, bias, _OFF)
    kind = fused_kind(x, plan, weight, bias) if kernel == _FUSED else FusedKind.UNFIT
    shape = [int(x.shape[d]) for d in plan.dims]
    op, op_args = None, ()
    if kernel == Kernel.CPU_OP and native():  # the fallback's calls take cpu_norm
        op, op_args = norm_op(), norm_arguments(plan, x, weight, bias is not None)
    return CallEntry(kernel, kind, shape, plan.eps, plan, recipe, op, op_args)


def _uncached(module: Any, x: Any) -> Any:
    # a Proxy first: the parameters read through torch.fx's tracer leave get_attr nodes
    if isinstance(x, torch.fx.Proxy):  # torch.fx.symbolic_trace (_traced.py)
        return fx_call(module, (x,), traced_norm)
    module._check_input(x)
    weight, bias = module.weight, module.bias
    _check_parameters(weight, bias)
    return norm(x, module._recipe_for(x), weight, bias, x.dtype, module._onnx_mode)


def forward_eager(module: Any, x: Tensor) -> Tensor:
    """An eager call of ``module`` on ``x`` (module docstring)."""
    if (
        type(x) is not Tensor
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or module._onnx_mode is not _OFF
    ):
        return _uncached(module, x)
    weight = module.weight
    bias = module.bias
    calls: CallCache = module._calls
    numel = x.numel()
    # whether autograd must record the call (``_cpu_norm.needs_grad``, inline: every call)
    grad = torch.is_grad_enabled() and (
        x.requires_grad
        or (weight is not None and weight.requires_grad)
        or (bias is not None and bias.requires_grad)
    )
    direct = calls.direct[grad].get(x.dim())
    if direct is not None and bias is None and numel < FUSED_LIMIT and x.is_cpu:
        (dtype, weight_class, weight_dtype, weight_shape, fused, shape, eps, plan, any_layout, op,
         op_args) = direct  # fmt: skip
        if (
            x.dtype is dtype
            and type(weight) is weight_class
            and (
                weight is None
                or (
                    weight.dtype is weight_dtype
                    # torch.rms_norm and the operator refuse any other weight shape themselves
                    and (op is not None or fused is _DIRECT or weight.shape == weight_shape)
                )
            )
            and _CHOICE.get() == "auto"
        ):
            # the ops check x's sizes and the weight's device; is_contiguous() refuses a
            # sparse x (the checked path names it); a non-contiguous x of a spec whose
            # upstream keeps x's strides, or for the operator, takes the keyed path
            try:
                if op is not None:
                    if x.is_contiguous() and plain(x) and plain(weight):
                        return op(x, shape, weight, None, eps, *op_args)
                elif any_layout or x.is_contiguous():
                    if fused is _DIRECT:
                        return torch.rms_norm(x, shape, weight, eps)
                    return fused_norm(x, plan, fused, weight)
            except RuntimeError:
                return _uncached(module, x)
    if x.layout is not _STRIDED:  # a sparse x has no is_contiguous(): the checked path names it
        return _uncached(module, x)
    # the size class (each kernel threshold) and the layout (the CPU operator takes only a
    # contiguous x, and a non-contiguous one takes the path laid out as its upstream's)
    size = (numel < FUSED_LIMIT) + 2 * x.is_contiguous()
    # the parameters' presence, class, dtype, shape and layout; their device (like x's, named
    # only when not the CPU's) is read where the plan is built and checked again by the
    # ops themselves on every call
    w = (
        None
        if weight is None
        else (type(weight), weight.dtype, weight.shape, weight.layout, weight.is_cpu)
    )
    b = None if bias is None else (type(bias), bias.dtype, bias.shape, bias.layout, bias.is_cpu)
    where = True if x.is_cpu else x.device
    choice = _CHOICE.get()
    key = (x.dtype, x.dim(), where, size, w, b, choice, grad)
    entry = calls.get(key)
    if entry is None:
        entry = _build(module, x, weight, bias)
        if all_plain(x, weight, bias):  # a torch.func or forward-AD call decides for itself
            calls[key] = entry
    kernel, fused, shape, eps, plan, recipe, op, op_args = entry
    memo = bias is None and numel < FUSED_LIMIT and where is True and choice == "auto"
    if kernel is _FUSED:  # torch.rms_norm checks x's sizes and the weight's shape
        # a non-contiguous x is not remembered: a contiguous one may take the operator
        if memo and x.is_contiguous() and all_plain(x, weight, bias):
            _remember_direct(calls, x, weight, entry, grad)
        try:
            if fused is _DIRECT:
                return torch.rms_norm(x, shape, weight, eps)
            return fused_norm(x, plan, fused, weight)
        except RuntimeError:
            # torch refused it (other sizes, another device): the checked path names
            # what is wrong in our words, or computes the call if nothing is
            return _uncached(module, x)
    module._check_input(x)
    if kernel in _CUSTOM and not (x.is_contiguous() and all_plain(x, weight, bias)):
        # what the key cannot hold (a torch.func transform, a tangent), and a layout the
        # operator does not take: decided again for this call
        return _uncached(module, x)
    if op is not None:
        if memo:
            _remember_direct(calls, x, weight, entry, grad)
        return op(x, shape, weight, bias, eps, *op_args)
    if kernel is _CPU_OP:
        return cpu_norm(x, plan, weight, bias)
    return execute(kernel, x, recipe, plan, weight, bias)
