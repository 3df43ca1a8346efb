"""``RMSNorm``'s eager calls: its ``__call__`` and the forward that eager calls run.

Both are plain functions that ``_modules.py`` binds as methods (``RMSNorm.__call__``
and ``RMSNorm._forward_eager``): the hot path of a decode step, kept apart from
the module's construction and spec handling. TorchScript never compiles them:
scripted modules run ``RMSNorm.forward``'s checked path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.modules.module as _mm
from torch import Tensor, nn

from rmsnorm_torch.kernels._fused import FusedKind, fused_norm
from rmsnorm_torch.nn._calls import FUSED_LIMIT, KERNEL_CHOICE
from rmsnorm_torch.nn._functional import norm, run
from rmsnorm_torch.nn._resolve import OnnxExport

__all__ = ["forward_eager", "module_call"]

_DIRECT = FusedKind.DIRECT
_OFF = OnnxExport.OFF
# The hot path's two context tests, read as globals: torch._C._is_tracing is
# torch.jit.is_tracing without its two Python frames; torch.compile recognizes
# is_compiling by identity, so the alias answers True while it traces.
_is_tracing = torch._C._is_tracing
_is_compiling = torch.compiler.is_compiling
_MODULE_CALL = nn.Module.__call__  # as torch defines it; torch.fx patches it while tracing
# torch's global module hooks (register_module_forward_hook ...): dicts it fills and
# empties in place, so these names see every change
_GLOBAL_FORWARD_HOOKS = _mm._global_forward_hooks
_GLOBAL_FORWARD_PRE_HOOKS = _mm._global_forward_pre_hooks
_GLOBAL_BACKWARD_HOOKS = _mm._global_backward_hooks
_GLOBAL_BACKWARD_PRE_HOOKS = _mm._global_backward_pre_hooks


def module_call(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``nn.Module.__call__`` without its two frames where it would only call ``forward``.

    ``nn.Module.__call__`` (``_wrapped_call_impl`` -> ``_call_impl``) costs 0.8 us
    a call, 8% of a [1, 4096] norm. Where that method would do nothing but call
    ``self.forward`` (no hook of any kind, no ``module.compile()``, not traced, and
    ``nn.Module.__call__`` not patched, as ``torch.fx`` does while it traces), so
    does this; in every other case it is ``nn.Module.__call__`` itself."""
    if (
        _is_compiling()  # first: torch.compile cannot trace _is_tracing
        or nn.Module.__call__ is not _MODULE_CALL
        or self._forward_hooks
        or self._forward_pre_hooks
        or self._backward_hooks
        or self._backward_pre_hooks
        or self._compiled_call_impl is not None
        or _GLOBAL_FORWARD_HOOKS
        or _GLOBAL_FORWARD_PRE_HOOKS
        or _GLOBAL_BACKWARD_HOOKS
        or _GLOBAL_BACKWARD_PRE_HOOKS
        or _is_tracing()
    ):
        return nn.Module.__call__(self, *args, **kwargs)
    return self.forward(*args, **kwargs)


def forward_eager(self: Any, x: Tensor) -> Tensor:
    """An eager call (the hot path; the plan cache is ``_calls.py``'s).

    Where ``torch.rms_norm`` computes the cached plan exactly (``_fused.py``) that
    one op runs, after checks of what only the input decides (a plain CPU tensor,
    its dtype, its size, the parameters' dtype, the context's kernel choice); a
    call the op refuses (a wrong size, a device mismatch) is retried on the
    checked path, which names the problem. Traced, compiled and exported calls
    take the checked path every time."""
    params = self._parameters
    try:  # a dict read; nn.Module.__getattr__ costs 0.4 us a name at decode shapes
        weight, bias = params["weight"], params["bias"]
    except KeyError:  # parametrized, or swapped out by torch.func.functional_call
        weight, bias = self.weight, self.bias
    if _is_compiling() or _is_tracing():  # in this order: see __call__
        self._check_input(x)
        return norm(x, self._recipe_for(x), weight, bias, x.dtype, self._onnx_mode)
    fused = self._fused.get(x.dtype)  # never filled in ONNX mode: see below
    if fused is not None and type(x) is Tensor and x.is_cpu and x.numel() < FUSED_LIMIT:
        shape, eps, weight_dtype, kind, plan = fused  # unpacked: cheaper than lookups
        if (weight is None or weight.dtype == weight_dtype) and KERNEL_CHOICE.get() == "auto":
            try:
                if kind is _DIRECT:
                    return torch.rms_norm(x, shape, weight, eps)
                return fused_norm(x, plan, kind, weight)
            except (RuntimeError, ValueError, TypeError):
                pass  # torch refused it: the checked path below names the problem
    if isinstance(x, torch.fx.Proxy):  # torch.fx.symbolic_trace: a leaf module, as
        tracer = x.tracer  # torch.nn.RMSNorm is (torch's modules are leaves)
        return tracer.create_proxy("call_module", tracer.path_of_module(self), (x,), {})
    if self._onnx_mode is not _OFF:  # export_onnx's private copy (a deep copy: no
        self._check_input(x)  # fused entries), run eagerly to check its example input
        return norm(x, self._recipe_for(x), weight, bias, x.dtype, self._onnx_mode)
    plan = self._calls.plan(self, x, weight, bias)
    if plan is None:  # the call was just resolved and the fused op takes it
        return self._forward_eager(x)
    recipe = self._recipe64  # inline _recipe_for: one project call fewer per call
    if recipe is None or x.dtype is not torch.float64:
        recipe = self._recipe
    return run(x, recipe, plan, weight, bias)
