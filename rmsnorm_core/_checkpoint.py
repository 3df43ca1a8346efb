"""The neutral checkpoint: safetensors tensors plus the specs as JSON metadata.

Layout of one file:

- tensors ``<layer>.scale`` and ``<layer>.bias`` (present as the spec says);
- metadata ``format = "rmsnorm-bridge"``, ``format_version = "1"`` and
  ``layers`` = JSON ``{layer: {"spec": RMSNormSpec.to_dict(), "param_shape": [...]}}``.

Loading never unpickles anything (the payload is raw bytes) and refuses,
naming the file and layer: unknown format versions, corrupt or truncated
files, invalid spec JSON, tensors whose shape or dtype disagree with the spec,
missing or extra tensors. Saving is atomic: a temporary file in the same
folder, then ``os.replace``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._dtypes import dtype_name
from ._errors import RMSNormError, RMSNormTypeError
from ._safetensors import serialize
from ._spec import RMSNormSpec

FORMAT = "rmsnorm-bridge"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True, eq=False)
class NeutralLayer:
    """One RMSNorm layer between frameworks: its spec and parameters (NumPy).

    Attributes:
        spec: the layer's spec.
        scale: array of the parameter shape in ``spec.param_dtype``, present
            iff ``spec.use_scale``. Stored as is: a ``scale_offset`` layer
            keeps its zero-centered values.
        bias: likewise for ``spec.use_bias``.
    """

    spec: RMSNormSpec
    scale: np.ndarray | None = None
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_layer("layer", self)

    @property
    def param_shape(self) -> tuple[int, ...]:
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


def save(path: str | os.PathLike[str], layers: Mapping[str, NeutralLayer]) -> Path:
    """Write ``layers`` to ``path`` atomically (an existing file is replaced whole).

    Raises:
        RMSNormError: a layer name is empty or contains no valid characters, or
            a layer is inconsistent with its spec.
    """
    tensors: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    if not isinstance(layers, Mapping):
        raise RMSNormTypeError(
            f"layers must be a mapping of name to NeutralLayer, got {type(layers).__name__}"
        )
    for name, layer in layers.items():
        if not isinstance(name, str) or not name or name.startswith(".") or name.endswith("."):
            raise RMSNormError(
                f"layer name {name!r} is not accepted; use a non-empty dotted "
                "name such as 'layers.0.norm'"
            )
        if not isinstance(layer, NeutralLayer):
            raise RMSNormTypeError(
                f"layer {name!r} must be a NeutralLayer, got {type(layer).__name__}"
            )
        meta[name] = {"spec": layer.spec.to_dict(), "param_shape": list(layer.param_shape)}
        for field in ("scale", "bias"):
            value = getattr(layer, field)
            if value is not None:
                tensors[f"{name}.{field}"] = value
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "layers": json.dumps(meta, sort_keys=True),
    }
    return write_atomic(path, serialize(tensors, metadata))


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise RMSNormError(f"cannot write {str(target)!r}: folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def load(path: str | os.PathLike[str]) -> dict[str, NeutralLayer]:
    """Read a neutral checkpoint; see the module docstring for what is refused.

    Raises:
        RMSNormError: naming the file (and layer) and the problem.
    """
    from ._checkpoint_read import read

    return read(Path(path))
