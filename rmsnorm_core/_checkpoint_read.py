"""Reading a neutral checkpoint, refusing everything that is not exactly right."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ._checkpoint import FORMAT, FORMAT_VERSION, NeutralLayer, check_layer
from ._errors import RMSNormError
from ._safetensors import deserialize
from ._spec import RMSNormSpec


def read(path: Path) -> dict[str, NeutralLayer]:
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RMSNormError(f"checkpoint {file!r} does not exist") from None
    except IsADirectoryError:
        raise RMSNormError(f"checkpoint {file!r} is a folder, not a file") from None
    except OSError as err:
        raise RMSNormError(f"checkpoint {file!r} cannot be read: {err.strerror}") from None
    meta, tensors = deserialize(file, raw)
    if meta.get("format") != FORMAT:
        raise RMSNormError(
            f"checkpoint {file!r} is not an rmsnorm-bridge checkpoint (metadata "
            f"format={meta.get('format')!r}, expected {FORMAT!r})"
        )
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise RMSNormError(
            f"checkpoint {file!r} has format_version={version!r}; this library "
            f"reads version {FORMAT_VERSION} (upgrade rmsnorm-bridge for newer)"
        )
    try:
        layers_meta = json.loads(meta.get("layers", ""))
    except json.JSONDecodeError as err:
        raise RMSNormError(
            f"checkpoint {file!r}: the 'layers' metadata is not JSON: {err}"
        ) from None
    if not isinstance(layers_meta, dict):
        raise RMSNormError(f"checkpoint {file!r}: the 'layers' metadata must be a JSON object")
    layers = {name: _layer(file, name, entry, tensors) for name, entry in layers_meta.items()}
    if tensors:
        raise RMSNormError(f"checkpoint {file!r} holds tensors no layer claims: {sorted(tensors)}")
    return layers


def _layer(file: str, name: str, entry: Any, tensors: dict[str, Any]) -> NeutralLayer:
    if not isinstance(entry, dict) or set(entry) != {"spec", "param_shape"}:
        raise RMSNormError(
            f"checkpoint {file!r}: layer {name!r} metadata must be an object "
            "with exactly 'spec' and 'param_shape'"
        )
    try:
        spec = RMSNormSpec.from_dict(entry["spec"])
    except RMSNormError as err:
        raise type(err)(f"checkpoint {file!r}: layer {name!r} has an invalid spec: {err}") from None
    shape = entry["param_shape"]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise RMSNormError(
            f"checkpoint {file!r}: layer {name!r} has param_shape={shape!r}; "
            "expected a list of ints >= 0"
        )
    params = {}
    for field, used in (("scale", spec.use_scale), ("bias", spec.use_bias)):
        key = f"{name}.{field}"
        if key in tensors:
            params[field] = tensors.pop(key)
        elif used:
            raise RMSNormError(
                f"checkpoint {file!r}: layer {name!r} is missing tensor {key!r} "
                f"(its spec has use_{field}=True)"
            )
    candidate = SimpleNamespace(spec=spec, scale=params.get("scale"), bias=params.get("bias"))
    try:  # checked under its own name before NeutralLayer checks it again, nameless
        check_layer(name, candidate, tuple(shape))
    except RMSNormError as err:
        raise type(err)(f"checkpoint {file!r}: {err}") from None
    layer = NeutralLayer(spec, candidate.scale, candidate.bias)
    return layer
