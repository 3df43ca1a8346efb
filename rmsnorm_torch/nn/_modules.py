"""``RMSNorm``, a drop-in for ``torch.nn.RMSNorm`` (``ResidualRMSNorm``: ``_residual_module.py``).

The module holds one ``RMSNormSpec`` and nothing copied from it: ``forward``
runs the spec compiled once (``spec.recipe``, refreshed whenever the spec is
set), ``.spec`` returns it, and checkpoints and exports read it, so all four
agree by construction. The spec's fields read as attributes (``m.eps``);
assigning one (``m.eps = 1e-5``) replaces the spec with ``spec.replace(...)``,
validated like a new spec, so forward, ``.spec``, a saved checkpoint and an
ONNX export all change together. Fields that would change the parameters
(``use_scale``, ``use_bias``, ``param_dtype``, the number of axes) are
refused: build a new module with :meth:`RMSNorm.from_spec`. ``param_dtype``
follows the parameters: after ``m.to(torch.bfloat16)``, ``m.spec.param_dtype``
is ``"bfloat16"``.
"""

# No "from __future__ import annotations" here: TorchScript reads the class
# attribute annotations as real types.

from typing import Any, List, Optional

import torch
from torch import Tensor, nn

from rmsnorm_core import (
    FLOAT64_EPS,
    RMSNormError,
    RMSNormSpec,
    RMSNormTypeError,
    check_normalized_shape,
)
from rmsnorm_core.rules import Recipe
from rmsnorm_core.spec import _rules
from rmsnorm_torch.kernels._resolve import OnnxExport
from rmsnorm_torch.nn._arguments import check_tensor
from rmsnorm_torch.nn._calls import CallCacheOwner, forward_eager
from rmsnorm_torch.nn._functional import norm
from rmsnorm_torch.nn._given import (
    eps_shown,
    eps_value,
    shape_given,
    shape_sizes,
    show_torch_fields,
)
from rmsnorm_torch.nn._module_fields import (
    MUTABLE_FIELDS,
    STRUCTURAL,
    _ShapeLike,
    check_structure,
    elementwise_affine_field,
    eps_assignment,
    eps_outside_spec,
    make_parameters,
    module_repr,
    no_spec_reason,
    normalized_shape_field,
    resolve_spec,
    spec_field,
    spec_of_parameters,
)
from rmsnorm_torch.nn._traced import pick_recipe


class RMSNorm(CallCacheOwner, nn.RMSNorm):
    """RMSNorm over any axes; a drop-in for ``torch.nn.RMSNorm``.

    A subclass of it, so that code which finds norms by ``isinstance(m, nn.RMSNorm)``
    (wrap policies, weight-decay filters, initializers) finds this one too; every method
    torch's defines (``forward``, ``reset_parameters``, ``extra_repr``) is this class's own,
    and ``torch.nn.RMSNorm.__init__`` is not run. ``ResidualRMSNorm`` is one too, with its
    own ``forward(x, residual)``.
    Same positional arguments, defaults and ``state_dict`` keys as
    ``torch.nn.RMSNorm`` (``weight``; ``bias`` when enabled), so its calls
    and state dicts work unchanged. ``eps=None`` means the epsilon of the dtype
    PyTorch computes in, as ``torch.nn.RMSNorm`` resolves it per call: float32's
    for float16, bfloat16, float32 and complex64 inputs, float64's for float64 and
    complex128 inputs; ``m.eps`` stays None, as torch's does, and ``m.eps = None``
    restores that rule. A spec has one eps: ``.spec`` (and so a checkpoint or an
    export) records float32's, and float64 calls use float64's until eps is set.
    Every eps torch's forward computes with is accepted (``_given.eps_value``: a bool,
    a NumPy scalar, a 0-dim tensor: read when given, not per call) with torch's result; NaN, inf,
    negative, underflowing and bool eps leave the module without a spec (``_module_fields.
    eps_outside_spec``): ``.spec`` then raises, naming the eps. ``m.eps``,
    ``m.normalized_shape``, ``m.elementwise_affine`` and ``repr`` show the arguments as
    given, as torch's do. complex64 and complex128 inputs are computed as torch computes
    them under the specs with torch's formula (``kernels/_resolve.complex_unfit``).
    ``torch.fx.symbolic_trace`` records it as a leaf ``call_module``, as torch's modules
    are, and as the root one ``call_function`` (``_traced.py``).

    Args:
        normalized_shape: sizes of the normalized axes: the trailing dims
            (torch's meaning) or, with ``spec``, the dims of ``spec.axes`` in
            increasing axis order.
        eps: added inside the root; None (default) or any form torch's forward reads
            (above); with ``spec`` a real number equal to ``spec.eps`` only.
        elementwise_affine: learn ``weight`` (initialized so that ``g = 1``); read by
            its truth, as torch reads it (``1`` and ``np.True_`` too).
        device: of the parameters.
        dtype: of the parameters.
        bias: keyword-only; learn ``bias`` (zeros at first), read by its truth; False.
        spec: keyword-only; an ``RMSNormSpec`` that decides the semantics;
            the other arguments must then agree with it (a conflict is an error).

    Raises:
        rmsnorm_core.RMSNormError: bad shapes, eps, or a conflict with ``spec``.
    """

    _recipe: Recipe
    _recipe64: Optional[Recipe]  # float64 calls' recipe where eps=None follows the dtype
    _sizes: List[int]
    _onnx_mode: OnnxExport
    # eager calls' plans (_calls.py); eps as given (any real number type); the spec, which
    # raises where no spec holds eps
    __jit_ignored_attributes__ = ["_calls", "_eps_given", "_shape_given", "_affine_given", "spec"]
    __jit_unused_properties__ = [
        "spec",
        "normalized_shape",
        "elementwise_affine",
        *MUTABLE_FIELDS,
        *STRUCTURAL,
    ]

    def __init__(
        self,
        normalized_shape: _ShapeLike,
        eps: Optional[float] = None,
        elementwise_affine: bool = True,
        device: Any = None,
        dtype: Optional[torch.dtype] = None,
        *,
        bias: bool = False,
        spec: Optional[RMSNormSpec] = None,
    ) -> None:
        nn.Module.__init__(self)  # not torch.nn.RMSNorm's: the spec makes the parameters
        shape = check_normalized_shape(shape_sizes(normalized_shape))
        resolved = resolve_spec(shape, eps, elementwise_affine, bias, dtype, spec)
        self._sizes = list(shape)
        # as given, for m.normalized_shape, m.elementwise_affine and repr, as torch keeps them
        self._shape_given = shape_given(normalized_shape)
        self._affine_given = elementwise_affine if spec is None else resolved.use_scale
        self._onnx_mode = OnnxExport.OFF  # changed on export_onnx's private copy only
        # eps=None: float64 inputs use float64's epsilon, as torch.nn.RMSNorm's do
        self._eps_follows_dtype = eps is None and spec is None
        self._eps_override = eps_value(eps) if spec is None and eps_outside_spec(eps) else None
        self._eps_given = eps  # what m.eps and repr show
        make_parameters(self, shape, resolved, device, dtype)
        self._set_spec(resolved)
        self.reset_parameters()

    @classmethod
    def from_spec(
        cls, spec: RMSNormSpec, normalized_shape: _ShapeLike, *, device: Any = None
    ) -> "RMSNorm":
        """Build a module for any spec, e.g. NCHW over C: ``from_spec(s.replace(axes=(1,)), C)``."""
        return cls(normalized_shape, device=device, spec=spec)

    @property
    def spec(self) -> RMSNormSpec:
        """The spec this module computes (``param_dtype`` read from its parameters).

        Raises:
            rmsnorm_core.RMSNormError: eps is NaN, inf, negative, underflowing or a bool, or a
                parameter is complex, which no spec holds (``no_spec_reason``).
        """
        reason = self._no_spec()
        if reason:
            raise RMSNormError(reason)
        return self._spec_now()

    def __dir__(self) -> List[str]:
        """``nn.Module``'s names less ``spec`` while no spec holds it: ``jit.trace`` reads each."""
        return [n for n in super().__dir__() if n != "spec" or not self._no_spec()]

    def _no_spec(self) -> str:
        return no_spec_reason(self._eps_given, self._eps_override, self.weight, self.bias)

    @spec.setter
    def spec(self, spec: RMSNormSpec) -> None:
        if not isinstance(spec, RMSNormSpec):
            raise RMSNormTypeError(f"spec must be an RMSNormSpec, got {type(spec).__name__}")
        self._check_structure(spec)
        if spec.eps != self._spec.eps or self._eps_override is not None:
            self._eps_follows_dtype = False  # an eps set by hand is every dtype's
        self._eps_override = None
        self._eps_given = None  # the spec's eps is the one shown
        self._set_spec(spec)

    def _spec_now(self) -> RMSNormSpec:
        """The spec held, ``param_dtype`` read from the parameters."""
        return spec_of_parameters(self._spec, self.weight, self.bias)

    def _check_structure(self, spec: RMSNormSpec) -> None:
        check_structure(tuple(self._sizes), self._spec_now(), spec)

    def _set_field(self, name: str, value: Any) -> None:
        """``m.<field> = value`` for a field other than eps: the eps rule stays."""
        spec = self._spec_now().replace(**{name: value})  # validated before anything changes
        self._check_structure(spec)
        self._set_spec(spec)

    def _eps_attribute(self) -> Optional[float]:
        """``m.eps`` as torch.nn.RMSNorm's (``eps_shown``)."""
        return eps_shown(self._eps_follows_dtype, self._eps_given, self._spec.eps)

    def _set_eps(self, eps: Any) -> None:
        """``m.eps = eps`` (``eps_assignment``)."""
        spec, self._eps_follows_dtype, self._eps_override = eps_assignment(self._spec_now(), eps)
        self._eps_given = eps
        self._set_spec(spec)

    def _set_spec(self, spec: RMSNormSpec) -> None:
        object.__setattr__(self, "_spec", spec)  # not a submodule or parameter
        recipe = spec.recipe
        if self._eps_override is not None:  # no spec holds it: torch's arithmetic
            recipe = recipe._replace(eps=self._eps_override)
        self._recipe = recipe
        follows = self._eps_follows_dtype
        self._recipe64 = spec.replace(eps=FLOAT64_EPS).recipe if follows else None
        show_torch_fields(self, self._shape_given, self._eps_attribute(), self._affine_given)
        # last: a forward on another thread that finds the new cache builds from the new
        # recipes (one that holds the old cache fills only that, which is dropped)
        self._new_calls()

    def _recipe_for(self, x: Tensor) -> Recipe:
        """The recipe of a call on ``x``: the spec's, or, where eps=None follows the input
        dtype, the spec's with float64's epsilon for a float64 ``x``."""
        return pick_recipe(self._recipe, self._recipe64, x.dtype)

    def register_parameter(self, name: str, param: Optional[nn.Parameter]) -> None:
        """``nn.Module``'s; also for ``bias`` where it is unused (a plain None attribute)."""
        if name == "bias" and "bias" in self.__dict__ and self.__dict__["bias"] is None:
            del self.__dict__["bias"]
        super().register_parameter(name, param)

    # Each field of the spec as an attribute: assigning one replaces the spec, and is
    # refused for use_scale / use_bias / param_dtype (they shape the parameters).
    axes = spec_field("axes")
    """The spec's normalized axes."""
    eps = spec_field("eps")
    """The spec's eps."""
    eps_placement = spec_field("eps_placement")
    """The spec's eps placement, ``"inside"`` or ``"outside"`` the root."""
    compute_dtype = spec_field("compute_dtype")
    """The spec's compute dtype."""
    cast_order = spec_field("cast_order")
    """The spec's cast order, ``"after_scale"`` or ``"before_scale"``."""
    output_dtype = spec_field("output_dtype")
    """The spec's output dtype rule, ``"input"`` or ``"promote"``."""
    scale_offset = spec_field("scale_offset")
    """The spec's scale offset (1.0 for Gemma's ``1 + w``)."""
    partial = spec_field("partial")
    """The spec's fraction of the block used for the statistic."""
    residual_dtype = spec_field("residual_dtype")
    """The spec's dtype of the residual sum."""
    scale_multiplies = spec_field("scale_multiplies")
    """What the scale multiplies, ``"normalized"`` or ``"inverse"`` (flax's order)."""
    use_scale = spec_field("use_scale")
    """Whether the module has ``weight`` (fixed: it shapes the parameters)."""
    use_bias = spec_field("use_bias")
    """Whether the module has ``bias`` (fixed: it shapes the parameters)."""
    param_dtype = spec_field("param_dtype")
    """The parameters' dtype (fixed: it shapes the parameters)."""

    normalized_shape = normalized_shape_field()
    elementwise_affine = elementwise_affine_field()

    def reset_parameters(self) -> None:
        """Weight to ``1 - scale_offset`` (so ``g = 1``: ones, or Gemma's zeros); bias to 0."""
        if self.weight is not None:
            nn.init.constant_(self.weight, 1.0 - self._spec.scale_offset)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        """torch.nn.RMSNorm's ``(5,), eps=0.001, elementwise_affine=True``, then each spec
        field that differs from what torch.nn.RMSNorm computes (``module_repr``)."""
        return module_repr(
            self._shape_given, self._eps_attribute(), self._affine_given, self._spec_now()
        )

    def _check_input(self, x: Tensor) -> None:
        if not torch.jit.is_scripting():  # scripted code has a typed x already
            check_tensor("x", x)
        if not torch.jit.is_tracing():
            _rules.check_normalized_sizes(list(x.shape), self._recipe.axes, self._sizes)

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` (see ``rmsnorm_core.RMSNormSpec`` for the formula)."""
        if not torch.jit.is_scripting():
            return forward_eager(self, x)
        self._check_input(x)
        return norm(x, self._recipe_for(x), self.weight, self.bias, x.dtype, self._onnx_mode)

    def _apply(self, fn: Any, recurse: bool = True) -> "RMSNorm":
        """``to`` / ``half`` / ``cuda`` ...: the parameters change, so do the cached plans."""
        out = super()._apply(fn, recurse)
        self._new_calls()
        return out
