"""``RMSNorm`` (a drop-in for ``torch.nn.RMSNorm``) and ``ResidualRMSNorm``.

Both are thin: ``forward`` is one call to the pure function in
``_functional.py``; the semantics are the module's ``spec`` (see
``rmsnorm_core.RMSNormSpec``). Written for TorchScript: typed attributes,
``List[int]`` axes, no dynamic dispatch in ``forward``.
"""

# No "from __future__ import annotations" here: TorchScript reads the class
# attribute annotations as real types.

import numbers
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from rmsnorm_core import (
    FLOAT32_EPS,
    RMSNormError,
    RMSNormSpec,
    RMSNormTypeError,
    check_normalized_shape,
    dtype_name,
)

from . import _checks
from ._functional import rms_norm, rms_norm_residual
from ._plan import torch_dtype

_ShapeLike = Union[int, Sequence[int], torch.Size]


def _resolve_spec(
    normalized_shape: Tuple[int, ...],
    eps: Optional[float],
    elementwise_affine: bool,
    bias: bool,
    dtype: Optional[torch.dtype],
    spec: Optional[RMSNormSpec],
) -> RMSNormSpec:
    """Build the spec from torch's arguments, or check them against ``spec``."""
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, numbers.Real)):
        raise RMSNormTypeError(f"eps={eps!r} is not accepted; eps must be a real number or None")
    param_dtype = None if dtype is None else dtype_name(dtype)
    if spec is None:
        return RMSNormSpec(
            axes=tuple(range(-len(normalized_shape), 0)),
            eps=FLOAT32_EPS if eps is None else eps,
            use_scale=elementwise_affine,
            use_bias=bias,
            param_dtype=param_dtype or dtype_name(torch.get_default_dtype()),
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
    if len(normalized_shape) != len(spec.axes):
        raise RMSNormError(
            f"normalized_shape={normalized_shape} has {len(normalized_shape)} dims but the spec "
            f"normalizes {len(spec.axes)} axes {spec.axes}; give one size per normalized axis"
        )
    return spec


class RMSNorm(nn.Module):
    """RMSNorm over any axes; a drop-in for ``torch.nn.RMSNorm``.

    Same constructor, defaults and ``state_dict`` keys as ``torch.nn.RMSNorm``
    (``weight``; ``bias`` when enabled), so its state dicts load unchanged.
    ``eps=None`` means float32's machine epsilon, what PyTorch uses for
    float16, bfloat16 and float32 inputs (for float64 inputs PyTorch uses
    float64's epsilon; a spec has one eps).

    Args:
        normalized_shape: sizes of the normalized axes: the trailing dims
            (torch's meaning) or, with ``spec``, the dims of ``spec.axes`` in
            increasing axis order.
        eps: added inside the root; None (default) as above.
        elementwise_affine: learn ``weight`` (initialized to ones).
        bias: learn ``bias`` (initialized to zeros). Default False.
        device, dtype: of the parameters.
        spec: an ``RMSNormSpec`` that decides the semantics; the other
            arguments must then agree with it (a conflict is an error).

    Raises:
        rmsnorm_core.RMSNormError: bad shapes, eps, or a conflict with ``spec``.
    """

    axes: List[int]
    normalized_shape: List[int]
    eps: float
    eps_placement: str
    compute_dtype: str
    cast_order: str
    output_dtype: str
    scale_offset: float
    partial: float
    __jit_unused_properties__ = ["spec"]

    def __init__(
        self,
        normalized_shape: _ShapeLike,
        eps: Optional[float] = None,
        elementwise_affine: bool = True,
        bias: bool = False,
        device: Any = None,
        dtype: Optional[torch.dtype] = None,
        *,
        spec: Optional[RMSNormSpec] = None,
    ) -> None:
        super().__init__()
        shape = check_normalized_shape(normalized_shape)
        self._spec = _resolve_spec(shape, eps, elementwise_affine, bias, dtype, spec)
        s = self._spec
        self.normalized_shape = list(shape)
        self.axes = list(s.axes)
        self.eps = s.eps
        self.eps_placement = s.eps_placement
        self.compute_dtype = s.compute_dtype
        self.cast_order = s.cast_order
        self.output_dtype = s.output_dtype
        self.scale_offset = s.scale_offset
        self.partial = s.partial
        factory = {"device": device, "dtype": torch_dtype(s.param_dtype)}
        self.elementwise_affine = s.use_scale
        if s.use_scale:
            self.weight = nn.Parameter(torch.empty(shape, **factory))
        else:
            self.register_parameter("weight", None)
        if s.use_bias:
            self.bias = nn.Parameter(torch.empty(shape, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @classmethod
    def from_spec(
        cls, spec: RMSNormSpec, normalized_shape: _ShapeLike, *, device: Any = None
    ) -> "RMSNorm":
        """Build a module for any spec, e.g. NCHW over C: ``from_spec(s.replace(axes=(1,)), C)``."""
        return cls(normalized_shape, device=device, spec=spec)

    @property
    def spec(self) -> RMSNormSpec:
        """The spec this module computes."""
        return self._spec

    def reset_parameters(self) -> None:
        """Weight to ``1 - scale_offset`` (so ``g = 1``: ones, or Gemma's zeros); bias to 0."""
        if self.weight is not None:
            nn.init.constant_(self.weight, 1.0 - self.scale_offset)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return f"{tuple(self.normalized_shape)}, spec={self._spec!r}"

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` (see ``rmsnorm_core.RMSNormSpec`` for the formula)."""
        if not torch.jit.is_tracing():
            _checks.check_normalized_shape(x, self.axes, self.normalized_shape)
        return rms_norm(
            x,
            self.axes,
            self.weight,
            self.bias,
            self.eps,
            self.eps_placement,
            self.compute_dtype,
            self.cast_order,
            self.output_dtype,
            self.scale_offset,
            self.partial,
        )


class ResidualRMSNorm(RMSNorm):
    """``forward(x, residual) -> (y, s)``: ``s = x + residual``, ``y = norm(s)``.

    Same arguments as :class:`RMSNorm`; ``spec.residual_dtype="float32"``
    keeps ``s`` in float32 (flash-attn's ``residual_in_fp32``). Fused equals
    unfused: ``y`` is computed from the stored ``s``.
    """

    residual_dtype: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.residual_dtype = self._spec.residual_dtype

    def forward(self, x: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        """Return ``(y, s)``."""
        if not torch.jit.is_tracing():
            _checks.check_normalized_shape(x, self.axes, self.normalized_shape)
        return rms_norm_residual(
            x,
            residual,
            self.axes,
            self.weight,
            self.bias,
            self.eps,
            self.eps_placement,
            self.compute_dtype,
            self.cast_order,
            self.output_dtype,
            self.scale_offset,
            self.partial,
            self.residual_dtype,
        )
