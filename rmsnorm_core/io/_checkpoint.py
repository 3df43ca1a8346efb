"""The neutral checkpoint: safetensors tensors plus the specs as JSON metadata.

The layout is written out in :func:`save`'s docstring and what loading refuses
in :func:`load`'s: those are the reference's entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from rmsnorm_core.io._atomic import write_atomic
from rmsnorm_core.io._digest import array_digest, check_digests
from rmsnorm_core.io._neutral import NeutralLayer, check_layer, check_layer_name, neutral_layer
from rmsnorm_core.io._safetensors import read_file, serialize
from rmsnorm_core.spec._errors import RMSNormError, RMSNormTypeError
from rmsnorm_core.spec._json import loads_strict
from rmsnorm_core.spec._spec import RMSNormSpec

FORMAT = "rmsnorm-bridge"
FORMAT_VERSION = 2
"""The layout version :func:`save` writes into the file's metadata; :func:`load`
reads versions 1 and 2 and refuses any other."""
_READS = ("1", "2")


def save(path: str | os.PathLike[str], layers: Mapping[str, NeutralLayer]) -> Path:
    """Write ``layers`` to ``path`` as one safetensors file, atomically.

    The file holds the tensors ``<layer>.scale`` and ``<layer>.bias`` (as
    each spec says) and the metadata ``format = "rmsnorm-bridge"``,
    ``format_version`` (:data:`FORMAT_VERSION`) and ``layers``, the JSON
    ``{layer: {"spec": RMSNormSpec.to_dict(), "param_shape": [...],
    "source": "<format>:<path>"}}`` (``source`` only when known), and ``sha256``,
    the JSON ``{tensor: hex digest of its bytes}``: safetensors keeps no checksum,
    so :func:`load` checks every one and a damaged payload is an error, never other
    numbers. A file with a ``sha256`` entry must hold a digest for each of its
    tensors (``{}`` for none); one without the entry, as written before digests
    were, is read unchecked. It is
    written to a temporary file in the same folder and then moved over
    ``path``, so an existing file is replaced whole or not at all.

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
        check_layer_name(name)
        if not isinstance(layer, NeutralLayer):
            raise RMSNormTypeError(
                f"layer {name!r} must be a NeutralLayer, got {type(layer).__name__}"
            )
        meta[name] = {"spec": layer.spec.to_dict(), "param_shape": list(layer.param_shape)}
        if layer.source is not None:
            meta[name]["source"] = str(layer.source)
        for field in ("scale", "bias"):
            value = getattr(layer, field)
            if value is not None:
                tensors[f"{name}.{field}"] = value
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "layers": json.dumps(meta, sort_keys=True),
        "sha256": json.dumps({k: array_digest(v) for k, v in tensors.items()}, sort_keys=True),
    }
    return write_atomic(path, serialize(tensors, metadata))


def load(path: str | os.PathLike[str]) -> dict[str, NeutralLayer]:
    """Read a neutral checkpoint written by :func:`save` (any version it wrote).

    Nothing is unpickled: the payload is raw bytes. Every layer is checked
    before any is returned.

    Raises:
        RMSNormError: naming the file (and layer) and the problem: not an
            rmsnorm-bridge checkpoint, an unknown ``format_version``, a
            corrupt or truncated file, invalid spec JSON, a tensor whose
            shape or dtype disagrees with its spec, a missing or extra tensor,
            a tensor that does not match its digest or has none.
    """
    return _read(Path(path))


def _read(path: Path) -> dict[str, NeutralLayer]:
    file = str(path)
    meta, tensors = read_file(path)
    if meta.get("format") != FORMAT:
        raise RMSNormError(
            f"checkpoint {file!r} is not an rmsnorm-bridge checkpoint (metadata "
            f"format={meta.get('format')!r}, expected {FORMAT!r})"
        )
    version = meta.get("format_version")
    if version not in _READS:
        raise RMSNormError(
            f"checkpoint {file!r} has format_version={version!r}; this library "
            f"reads versions {', '.join(_READS)} (upgrade rmsnorm-bridge for newer)"
        )
    layers_meta = _json_object(file, meta, "layers")
    if "sha256" in meta:  # a file written before digests were is not checked
        digests = loads_strict(meta["sha256"], f"checkpoint {file!r}: the 'sha256' metadata")
        check_digests(f"checkpoint {file!r}", digests, tensors, "tensor")
    layers = {name: _layer(file, name, entry, tensors) for name, entry in layers_meta.items()}
    if tensors:
        raise RMSNormError(f"checkpoint {file!r} holds tensors no layer claims: {sorted(tensors)}")
    return layers


def _layer(file: str, name: str, entry: Any, tensors: dict[str, Any]) -> NeutralLayer:
    try:
        check_layer_name(name)
    except RMSNormError as err:
        raise RMSNormError(f"checkpoint {file!r}: {err}") from None
    keys = set(entry) if isinstance(entry, dict) else set()
    if not {"spec", "param_shape"} <= keys <= {"spec", "param_shape", "source"}:
        raise RMSNormError(
            f"checkpoint {file!r}: layer {name!r} metadata must be an object "
            "with 'spec' and 'param_shape' (and optionally 'source')"
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
    try:  # the recorded param_shape too, then the layer under its own name
        check_layer(name, candidate, tuple(shape))
        source = entry.get("source")
        if source is not None and not isinstance(source, str):
            raise RMSNormError(f"layer {name!r} has source={source!r}; expected a string")
        return neutral_layer(name, spec, candidate.scale, candidate.bias, source)
    except RMSNormError as err:
        raise type(err)(f"checkpoint {file!r}: {err}") from None


def _json_object(file: str, meta: Mapping[str, str], key: str) -> dict:
    """The metadata entry ``key`` read as a JSON object (a missing one reads as "")."""
    value = loads_strict(meta.get(key, ""), f"checkpoint {file!r}: the {key!r} metadata")
    if not isinstance(value, dict):
        raise RMSNormError(f"checkpoint {file!r}: the {key!r} metadata must be a JSON object")
    return value
