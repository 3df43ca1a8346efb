"""The modules under ``torch.fx.symbolic_trace``, and the recipe of a call.

A module inside a traced model is a leaf, one ``call_module`` node, as torch's own
modules are. The traced ROOT has no path to call (torch.fx traces into a root's
``forward``, as it does into torch.nn.RMSNorm's): it becomes one ``call_function`` of
:func:`traced_norm` (:func:`traced_residual`) on ``x``, the root's ``weight`` and ``bias``
(``get_attr`` nodes, so the GraphModule copies them) and its recipes and sizes (constants
in the generated code), and computes what the module computes, at any rank. Both functions
compile with TorchScript, and record themselves again where the GraphModule's code is
retraced (unpickling, ``deepcopy``), so the GraphModule saves, copies and scripts as
torch.nn.RMSNorm's does.
"""

# No "from __future__ import annotations": TorchScript compiles pick_recipe.

from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core.rules import Recipe
from rmsnorm_core.spec import _rules
from rmsnorm_torch.nn._arguments import check_tensor, refuse_complex
from rmsnorm_torch.nn._functional import norm, norm_residual

_ROOT_ATTRIBUTES = ("_recipe", "_recipe64", "_sizes", "weight", "bias")


def pick_recipe(recipe: Recipe, recipe64: Optional[Recipe], dtype: torch.dtype) -> Recipe:
    """The recipe of a call in ``dtype``: the spec's, or, where eps=None follows the input
    dtype (``recipe64`` is not None), float64's epsilon for float64 and complex128."""
    if recipe64 is not None and (dtype == torch.float64 or dtype == torch.complex128):
        return recipe64
    return recipe


@torch.jit.unused
def fx_call(module: torch.nn.Module, args: Tuple[Any, ...], root_fn: Callable[..., Any]) -> Any:
    """The node of ``module(*args)`` where an argument is a ``torch.fx.Proxy``."""
    tracer = next(a for a in args if isinstance(a, torch.fx.Proxy)).tracer
    path = tracer.path_of_module(module)
    if path:
        return tracer.create_proxy("call_module", path, args, {})
    # weight and bias read through the tracer (a Proxy of the parameter, or None); the
    # recipes and sizes written into the generated code as constants (typed there, so
    # that TorchScript compiles it: a NamedTuple read by get_attr is an untyped tuple)
    attributes = [getattr(module, n) for n in _ROOT_ATTRIBUTES]
    return tracer.create_proxy("call_function", root_fn, (*args, *attributes), {})


@torch.jit.unused
def _retraced(root_fn: Callable[..., Any], args: Tuple[Any, ...]) -> Any:
    """The node of ``root_fn(*args)`` where the GraphModule that calls it is traced again
    (unpickling, ``deepcopy`` and ``torch.fx`` passes retrace its generated code), or None
    where no argument is a ``torch.fx.Proxy``."""
    proxies = [a for a in args if isinstance(a, torch.fx.Proxy)]
    if not proxies:
        return None
    return proxies[0].tracer.create_proxy("call_function", root_fn, args, {})


def _checked(x: Tensor, recipe: Recipe, recipe64: Optional[Recipe], sizes: List[int]) -> Recipe:
    if not torch.jit.is_scripting():  # scripted code has a typed x already
        check_tensor("x", x)
    chosen = pick_recipe(recipe, recipe64, x.dtype)
    _rules.check_normalized_sizes(list(x.shape), chosen.axes, sizes)
    return chosen


def traced_norm(
    x: Tensor,
    recipe: Recipe,
    recipe64: Optional[Recipe],
    sizes: List[int],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
) -> Tensor:
    """``RMSNorm.forward`` of a traced root: the module's recipe on ``x``."""
    if not torch.jit.is_scripting():
        proxy = _retraced(traced_norm, (x, recipe, recipe64, sizes, weight, bias))
        if proxy is not None:
            return proxy
    chosen = _checked(x, recipe, recipe64, sizes)
    return norm(x, chosen, weight, bias, x.dtype)


def traced_residual(
    x: Tensor,
    residual: Tensor,
    recipe: Recipe,
    recipe64: Optional[Recipe],
    sizes: List[int],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
) -> Tuple[Tensor, Tensor]:
    """``ResidualRMSNorm.forward`` of a traced root: ``(y, s)``."""
    if not torch.jit.is_scripting():
        args = (x, residual, recipe, recipe64, sizes, weight, bias)
        proxy = _retraced(traced_residual, args)
        if proxy is not None:
            return proxy
        refuse_complex("weight.dtype", None if weight is None else weight.dtype)
        refuse_complex("bias.dtype", None if bias is None else bias.dtype)
    chosen = _checked(x, recipe, recipe64, sizes)
    if not torch.jit.is_scripting():
        check_tensor("residual", residual)
    return norm_residual(x, residual, chosen, weight, bias)
