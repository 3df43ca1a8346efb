"""The neutral layer: one RMSNorm's spec and parameters as NumPy, between frameworks."""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace
from typing import Any

import numpy as np

from rmsnorm_core.spec._dtypes import dtype_name
from rmsnorm_core.spec._errors import RMSNormError, RMSNormTypeError
from rmsnorm_core.spec._spec import RMSNormSpec


@dataclasses.dataclass(frozen=True, eq=False)
class NeutralLayer:
    """One RMSNorm layer between frameworks: its spec and parameters (NumPy).

    Attributes:
        spec: the layer's spec.
        scale: array of the parameter shape in ``spec.param_dtype``, present
            iff ``spec.use_scale``. Stored as is: a ``scale_offset`` layer
            keeps its zero-centered values.
        bias: likewise for ``spec.use_bias``.
        source: where the layer came from, ``"<format>:<path in that model>"``
            (e.g. ``"torch:model.layers.0.input_layernorm"``), kept through
            conversions so a round trip lands it where it was; None if unknown.
    """

    spec: RMSNormSpec
    scale: np.ndarray | None = None
    bias: np.ndarray | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        check_layer("layer", self)

    @property
    def param_shape(self) -> tuple[int, ...]:
        """The shape of the layer's parameters; ``()`` when it has none."""
        p = self.scale if self.scale is not None else self.bias
        return () if p is None else tuple(p.shape)

    def equals(self, other: NeutralLayer) -> bool:
        """Bit-identical spec, dtypes and values (NaNs included)."""
        return self.spec == other.spec and all(
            (a is None and b is None)
            or (
                a is not None
                and b is not None
                and a.dtype == b.dtype
                and a.shape == b.shape
                and a.tobytes() == b.tobytes()
            )
            for a, b in ((self.scale, other.scale), (self.bias, other.bias))
        )


def check_layer(name: str, layer: Any, param_shape: tuple[int, ...] | None = None) -> None:
    """Raise, naming ``name``, unless ``layer`` is consistent with its spec."""
    if not isinstance(layer.spec, RMSNormSpec):
        raise RMSNormTypeError(
            f"layer {name!r}: spec must be an RMSNormSpec, got {type(layer.spec).__name__}"
        )
    shapes = set()
    for field, used in (("scale", layer.spec.use_scale), ("bias", layer.spec.use_bias)):
        value = getattr(layer, field)
        if used and value is None:
            raise RMSNormError(
                f"layer {name!r}: the spec has use_{field}=True but no {field} tensor is present"
            )
        if not used and value is not None:
            raise RMSNormError(
                f"layer {name!r}: a {field} tensor is present but the spec has use_{field}=False"
            )
        if value is None:
            continue
        if not isinstance(value, np.ndarray):
            raise RMSNormTypeError(
                f"layer {name!r}: {field} must be a NumPy array, got {type(value).__name__}"
            )
        if dtype_name(value.dtype) != layer.spec.param_dtype:
            raise RMSNormError(
                f"layer {name!r}: {field} has dtype {dtype_name(value.dtype)} but "
                f"the spec has param_dtype={layer.spec.param_dtype!r}"
            )
        if value.ndim != len(layer.spec.axes):
            raise RMSNormError(
                f"layer {name!r}: {field} has shape {value.shape}, rank "
                f"{value.ndim}, but the spec normalizes {len(layer.spec.axes)} "
                f"axes {layer.spec.axes}"
            )
        if param_shape is not None and tuple(value.shape) != tuple(param_shape):
            raise RMSNormError(
                f"layer {name!r}: {field} has shape {value.shape} but the "
                f"checkpoint records param_shape {tuple(param_shape)}"
            )
        shapes.add(tuple(value.shape))
    if len(shapes) > 1:
        raise RMSNormError(f"layer {name!r}: scale and bias shapes differ: {sorted(shapes)}")


_NAME = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


def check_layer_name(name: Any) -> str:
    """Raise unless ``name`` is a dotted module path: segments of letters, digits, ``_``, ``-``.

    Layer names become tensor keys, file names (``rmsnorm export``) and module
    paths, so a ``/``, a NUL or an empty segment is refused where it enters.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise RMSNormError(
            f"layer name {str(name)[:80]!r} is not accepted; a layer name is a dotted module "
            "path of letters, digits, '_' and '-', such as 'layers.0.norm'"
        )
    return name


def neutral_layer(
    name: str, spec: RMSNormSpec, scale: Any, bias: Any, source: str | None = None
) -> NeutralLayer:
    """A :class:`NeutralLayer`, its consistency errors naming the layer ``name``."""
    check_layer(name, SimpleNamespace(spec=spec, scale=scale, bias=bias))
    return NeutralLayer(spec, scale, bias, source)
