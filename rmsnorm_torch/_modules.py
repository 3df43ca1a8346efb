"""``RMSNorm`` (a drop-in for ``torch.nn.RMSNorm``) and ``ResidualRMSNorm``.

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

import numbers
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from rmsnorm_core import (
    FLOAT32_EPS,
    FLOAT_DTYPES,
    RMSNormError,
    RMSNormSpec,
    RMSNormTypeError,
    _rules,
    check_normalized_shape,
)
from rmsnorm_core import dtype_name as core_dtype_name
from rmsnorm_core.rules import Recipe

from ._functional import norm, norm_residual
from ._torch_dtypes import torch_dtype

_ShapeLike = Union[int, Sequence[int], torch.Size]
MUTABLE_FIELDS = (
    "axes",
    "eps",
    "eps_placement",
    "compute_dtype",
    "cast_order",
    "output_dtype",
    "scale_offset",
    "partial",
    "residual_dtype",
)
"""Spec fields assignable on a module (the rest shape its parameters)."""
_STRUCTURAL = ("use_scale", "use_bias", "param_dtype")


def _resolve_spec(
    shape: Tuple[int, ...],
    eps: Optional[float],
    elementwise_affine: bool,
    bias: bool,
    dtype: Optional[torch.dtype],
    spec: Optional[RMSNormSpec],
) -> RMSNormSpec:
    """Build the spec from torch's arguments, or check them against ``spec``."""
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, numbers.Real)):
        raise RMSNormTypeError(f"eps={eps!r} is not accepted; eps must be a real number or None")
    param_dtype = None if dtype is None else core_dtype_name(dtype)
    if spec is None:
        return RMSNormSpec(
            axes=tuple(range(-len(shape), 0)),
            eps=FLOAT32_EPS if eps is None else eps,
            use_scale=elementwise_affine,
            use_bias=bias,
            param_dtype=param_dtype or core_dtype_name(torch.get_default_dtype()),
        )
    if not isinstance(spec, RMSNormSpec):
        raise RMSNormTypeError(f"spec must be an RMSNormSpec, got {type(spec).__name__}")
    conflicts = []
    if eps is not None and float(eps) != spec.eps:
        conflicts.append(f"eps={eps!r} (spec.eps={spec.eps!r})")
    if not elementwise_affine and spec.use_scale:
        conflicts.append("elementwise_affine=False (spec.use_scale=True)")
    if bias and not spec.use_bias:
        conflicts.append("bias=True (spec.use_bias=False)")
    if param_dtype is not None and param_dtype != spec.param_dtype:
        conflicts.append(f"dtype={dtype} (spec.param_dtype={spec.param_dtype!r})")
    if conflicts:
        raise RMSNormError(
            f"{', '.join(conflicts)} conflict with the spec; with spec= leave these arguments "
            "at their defaults or make them agree"
        )
    _check_axes_count(shape, spec)
    return spec


def _check_axes_count(shape: Tuple[int, ...], spec: RMSNormSpec) -> None:
    if len(shape) != len(spec.axes):
        raise RMSNormError(
            f"normalized_shape={shape} has {len(shape)} dims but the spec normalizes "
            f"{len(spec.axes)} axes {spec.axes}; give one size per normalized axis"
        )


def _field(name: str) -> property:
    def get(self: "RMSNorm") -> Any:
        return getattr(self.spec, name)

    def set_(self: "RMSNorm", value: Any) -> None:
        self.spec = self.spec.replace(**{name: value})

    what = "fixed: it shapes the parameters" if name in _STRUCTURAL else "assigning replaces it"
    return property(get, set_, doc=f"The spec's ``{name}`` ({what}).")


class RMSNorm(nn.Module):
    """RMSNorm over any axes; a drop-in for ``torch.nn.RMSNorm``.

    Same positional arguments, defaults and ``state_dict`` keys as
    ``torch.nn.RMSNorm`` (``weight``; ``bias`` when enabled), so its calls
    and state dicts work unchanged. ``eps=None`` means float32's machine
    epsilon, what PyTorch uses for float16, bfloat16 and float32 inputs (for
    float64 inputs PyTorch uses float64's epsilon; a spec has one eps).

    Args:
        normalized_shape: sizes of the normalized axes: the trailing dims
            (torch's meaning) or, with ``spec``, the dims of ``spec.axes`` in
            increasing axis order.
        eps: added inside the root; None (default) as above.
        elementwise_affine: learn ``weight`` (initialized so that ``g = 1``).
        device: of the parameters.
        dtype: of the parameters.
        bias: keyword-only; learn ``bias`` (initialized to zeros). Default False.
        spec: keyword-only; an ``RMSNormSpec`` that decides the semantics;
            the other arguments must then agree with it (a conflict is an error).

    Raises:
        rmsnorm_core.RMSNormError: bad shapes, eps, or a conflict with ``spec``.
    """

    _recipe: Recipe
    _sizes: List[int]
    _onnx_mode: int
    __jit_unused_properties__ = [
        "spec",
        "normalized_shape",
        "elementwise_affine",
        *MUTABLE_FIELDS,
        *_STRUCTURAL,
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
        super().__init__()
        shape = check_normalized_shape(normalized_shape)
        resolved = _resolve_spec(shape, eps, elementwise_affine, bias, dtype, spec)
        self._sizes = list(shape)
        self._onnx_mode = 0  # set on export_onnx's private copy only (see _functional.norm)
        factory = {"device": device, "dtype": torch_dtype(resolved.param_dtype)}
        for name, used in (("weight", resolved.use_scale), ("bias", resolved.use_bias)):
            if used:
                setattr(self, name, nn.Parameter(torch.empty(shape, **factory)))
            else:
                self.register_parameter(name, None)
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
        """The spec this module computes (``param_dtype`` read from its parameters)."""
        spec = self._spec
        present = [core_dtype_name(p.dtype) for p in (self.weight, self.bias) if p is not None]
        # a non-float parameter (assigned by hand) is refused by forward, with its name
        if present and present[0] != spec.param_dtype and present[0] in FLOAT_DTYPES:
            spec = spec.replace(param_dtype=present[0])
        return spec

    @spec.setter
    def spec(self, spec: RMSNormSpec) -> None:
        if not isinstance(spec, RMSNormSpec):
            raise RMSNormTypeError(f"spec must be an RMSNormSpec, got {type(spec).__name__}")
        _check_axes_count(tuple(self._sizes), spec)
        current = self.spec
        changed = [
            f"{f} ({getattr(current, f)!r} -> {getattr(spec, f)!r})"
            for f in _STRUCTURAL
            if getattr(spec, f) != getattr(current, f)
        ]
        if changed:
            raise RMSNormError(
                f"cannot change {', '.join(changed)} on an existing module: they decide its "
                "parameters; build a new one with RMSNorm.from_spec(spec, normalized_shape)"
            )
        self._set_spec(spec)

    def _set_spec(self, spec: RMSNormSpec) -> None:
        object.__setattr__(self, "_spec", spec)  # not a submodule or parameter
        self._recipe = spec.recipe

    # Each field of the spec as an attribute: assigning one replaces the spec, and is
    # refused for use_scale / use_bias / param_dtype (they shape the parameters).
    axes = _field("axes")
    """The spec's normalized axes."""
    eps = _field("eps")
    """The spec's eps."""
    eps_placement = _field("eps_placement")
    """The spec's eps placement, ``"inside"`` or ``"outside"`` the root."""
    compute_dtype = _field("compute_dtype")
    """The spec's compute dtype."""
    cast_order = _field("cast_order")
    """The spec's cast order, ``"after_scale"`` or ``"before_scale"``."""
    output_dtype = _field("output_dtype")
    """The spec's output dtype rule, ``"input"`` or ``"promote"``."""
    scale_offset = _field("scale_offset")
    """The spec's scale offset (1.0 for Gemma's ``1 + w``)."""
    partial = _field("partial")
    """The spec's fraction of the block used for the statistic."""
    residual_dtype = _field("residual_dtype")
    """The spec's dtype of the residual sum."""
    use_scale = _field("use_scale")
    """Whether the module has ``weight`` (fixed: it shapes the parameters)."""
    use_bias = _field("use_bias")
    """Whether the module has ``bias`` (fixed: it shapes the parameters)."""
    param_dtype = _field("param_dtype")
    """The parameters' dtype (fixed: it shapes the parameters)."""

    @property
    def normalized_shape(self) -> Tuple[int, ...]:
        """The sizes of the normalized axes (fixed: they shape the parameters)."""
        return tuple(self._sizes)

    @normalized_shape.setter
    def normalized_shape(self, value: Any) -> None:
        raise RMSNormError(
            f"normalized_shape={value!r} cannot be assigned: it shapes the parameters; build a "
            "new module with RMSNorm.from_spec(spec, normalized_shape)"
        )

    @property
    def elementwise_affine(self) -> bool:
        """torch.nn.RMSNorm's name for ``use_scale`` (assigning it is refused likewise)."""
        return self._spec.use_scale

    @elementwise_affine.setter
    def elementwise_affine(self, value: Any) -> None:
        self.use_scale = value

    def reset_parameters(self) -> None:
        """Weight to ``1 - scale_offset`` (so ``g = 1``: ones, or Gemma's zeros); bias to 0."""
        if self.weight is not None:
            nn.init.constant_(self.weight, 1.0 - self._spec.scale_offset)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        """The sizes and the spec, as ``repr`` prints them."""
        return f"{tuple(self._sizes)}, spec={self.spec!r}"

    def _check_input(self, x: Tensor) -> None:
        if not torch.jit.is_tracing():
            _rules.check_normalized_sizes(list(x.shape), self._recipe.axes, self._sizes)

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` (see ``rmsnorm_core.RMSNormSpec`` for the formula)."""
        self._check_input(x)
        return norm(x, self._recipe, self.weight, self.bias, x.dtype, self._onnx_mode)


class ResidualRMSNorm(RMSNorm):
    """``forward(x, residual) -> (y, s)``: ``s = x + residual``, ``y = norm(s)``.

    Same arguments as :class:`RMSNorm`; ``spec.residual_dtype="float32"``
    keeps ``s`` in float32 (flash-attn's ``residual_in_fp32``). Fused equals
    unfused: ``y`` is computed from the stored ``s``.
    """

    def forward(self, x: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        """Return ``(y, s)``."""
        self._check_input(x)
        return norm_residual(x, residual, self._recipe, self.weight, self.bias, self._onnx_mode)
