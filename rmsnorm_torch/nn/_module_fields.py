"""The torch module's spec arguments: torch's constructor arguments -> one spec, and
the spec's fields as module attributes (assigning one replaces the spec)."""

# No "from __future__ import annotations": the module class reads these at import.

import numbers
from typing import Any, Optional, Sequence, Tuple, Union

import torch

from rmsnorm_core import FLOAT32_EPS, RMSNormError, RMSNormSpec, RMSNormTypeError, dtype_name

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
STRUCTURAL = ("use_scale", "use_bias", "param_dtype")


def resolve_spec(
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
    param_dtype = None if dtype is None else dtype_name(dtype)
    if spec is None:
        return RMSNormSpec(
            axes=tuple(range(-len(shape), 0)),
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
    check_axes_count(shape, spec)
    return spec


def check_axes_count(shape: Tuple[int, ...], spec: RMSNormSpec) -> None:
    if len(shape) != len(spec.axes):
        raise RMSNormError(
            f"normalized_shape={shape} has {len(shape)} dims but the spec normalizes "
            f"{len(spec.axes)} axes {spec.axes}; give one size per normalized axis"
        )


def spec_field(name: str) -> property:
    def get(self: Any) -> Any:
        return getattr(self.spec, name)

    def set_(self: Any, value: Any) -> None:
        spec = self.spec.replace(**{name: value})  # validated before anything changes
        if name == "eps":  # an eps set by hand is every dtype's, even float32's own
            self._eps_follows_dtype = False
        self.spec = spec

    what = "fixed: it shapes the parameters" if name in STRUCTURAL else "assigning replaces it"
    return property(get, set_, doc=f"The spec's ``{name}`` ({what}).")
