"""What ``--to hf`` writes beside its shards, and the folders it may write into.

``rmsnorm_layers.json`` holds each layer's spec as a neutral checkpoint's
metadata does (``{"format": "rmsnorm-bridge", "format_version": "2",
"layers": {name: {"spec", "param_shape", "source"}}}``), so that reading the
folder back restores every layer's own eps, offset and dtypes without a
``config.json``. A folder is written only when it is absent, empty, or one
this writer wrote (its index names only this file's layers' tensors and every
entry is the index, this file or a shard of the index named as this writer
names its shards): a model folder is refused, never rewritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rmsnorm_core.io._checkpoint import FORMAT, FORMAT_VERSION, _layer
from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.spec._errors import RMSNormError

SIDECAR = "rmsnorm_layers.json"
SHARD_NAME = re.compile(r"model(-[0-9]{5}-of-[0-9]{5})?\.safetensors")
"""The names of the shards this writer writes: a folder holding any other file is not ours."""


def sidecar_bytes(layers: Mapping[str, NeutralLayer]) -> bytes:
    """The file's JSON: every layer's spec, parameter shape and source."""
    meta: dict[str, Any] = {}
    for name, layer in layers.items():
        meta[name] = {"spec": layer.spec.to_dict(), "param_shape": list(layer.param_shape)}
        if layer.source is not None:
            meta[name]["source"] = str(layer.source)
    doc = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "layers": meta}
    return json.dumps(doc, indent=2, sort_keys=True).encode()


def _member(doc: Any, key: str) -> dict | None:
    """``doc[key]`` where ``doc`` is a JSON object and that member an object (absent: empty);
    None for any other shape, which this writer never writes."""
    if not isinstance(doc, dict):
        return None
    member = doc.get(key, {})
    return member if isinstance(member, dict) else None


def writable_target(folder: Path, index: str, read_json: Callable[[Path, str], Any]) -> set[str]:
    """The shards of a previous write of this writer in ``folder`` (empty for a new folder).

    Raises:
        RMSNormError: the folder holds anything this writer did not write.
    """
    if not folder.exists():
        return set()
    if not folder.is_dir():
        raise RMSNormError(f"--to hf: {str(folder)!r} exists and is not a folder")
    entries = {p.name for p in folder.iterdir()}
    if not entries:
        return set()
    shards: set[str] = set()
    ours = {index, SIDECAR} <= entries
    if ours:
        weight_map = _member(read_json(folder / index, "index"), "weight_map")
        side = _member(read_json(folder / SIDECAR, "layer specs"), "layers")
        ours = weight_map is not None and side is not None  # else: JSON of another shape
        if ours:
            names = {f"{n}.{k}" for n in side for k in ("weight", "bias")}
            # only names this writer gives its shards: a crafted index cannot make it
            # delete any other file
            shards = {str(s) for s in weight_map.values() if SHARD_NAME.fullmatch(str(s))}
            ours = set(weight_map) <= names and entries <= {index, SIDECAR} | shards
    if not ours:
        shown = ", ".join(sorted(entries)[:3]) + (" ..." if len(entries) > 3 else "")
        raise RMSNormError(
            f"--to hf: {str(folder)!r} holds files this writer did not write ({shown}); "
            "norms are written into a new or empty folder, or over a previous --to hf output "
            "(merging them into a model folder is not supported)"
        )
    return shards


def read_sidecar(
    folder: Path,
    weight_map: Mapping[str, Any],
    read_json: Callable[[Path, str], Any],
    read_shard: Callable[[str, set[str]], dict[str, Any]],
) -> dict[str, NeutralLayer]:
    """Every layer the file lists, with its own spec and the tensors the index maps."""
    file = str(folder / SIDECAR)
    doc = read_json(folder / SIDECAR, "layer specs")
    layers_meta = doc.get("layers") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != FORMAT
        or not isinstance(layers_meta, dict)
    ):
        raise RMSNormError(f"{file!r} is not an rmsnorm-bridge layer file (format {FORMAT!r})")
    wanted: dict[str, set[str]] = {}
    for name in layers_meta:
        for key in (f"{name}.weight", f"{name}.bias"):
            if key in weight_map:
                wanted.setdefault(str(weight_map[key]), set()).add(key)
    tensors: dict[str, Any] = {}
    for shard, keys in sorted(wanted.items()):
        for key, value in read_shard(shard, keys).items():
            name, _, kind = key.rpartition(".")
            tensors[f"{name}.{'scale' if kind == 'weight' else 'bias'}"] = value
    return {name: _layer(file, name, entry, tensors) for name, entry in layers_meta.items()}
