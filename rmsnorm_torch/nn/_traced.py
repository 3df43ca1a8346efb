"""The modules under ``torch.fx.symbolic_trace``, and the recipe of a call.

A module inside a traced model is a leaf, one ``call_module`` node, as torch's own
modules are. The traced ROOT has no path to call (torch.fx traces into a root's
``forward``, as it does into torch.nn.RMSNorm's): it becomes one ``call_function`` of
:func:`traced_norm` (:func:`traced_residual`) on ``x`` and the root's ``weight``,
``bias``, recipes and sizes, read by ``get_attr`` nodes, so the GraphModule copies them and
computes what the module computes, at any rank.
"""

# No "from __future__ import annotations": TorchScript compiles pick_recipe.

from typing import Any, Callable, List, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core.rules import Recipe
from rmsnorm_core.spec import _rules
from rmsnorm_torch.nn._arguments import check_tensor
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
    # weight and bias read through the tracer (a Proxy of the parameter, or None)
    attributes = [
        getattr(module, n)
        if n in ("weight", "bias") or getattr(module, n) is None
        else tracer.create_proxy("get_attr", n, (), {})
        for n in _ROOT_ATTRIBUTES
    ]
    return tracer.create_proxy("call_function", root_fn, (*args, *attributes), {})


def _checked(x: Tensor, recipe: Recipe, recipe64: Optional[Recipe], sizes: List[int]) -> Recipe:
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
    chosen = _checked(x, recipe, recipe64, sizes)
    check_tensor("residual", residual)
    return norm_residual(x, residual, chosen, weight, bias)
