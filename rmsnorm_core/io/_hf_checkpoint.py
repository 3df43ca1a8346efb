"""Hugging Face checkpoint folders for ``rmsnorm convert``: sharded safetensors + config.json.

Reading a folder (or its ``model.safetensors.index.json``) takes the norm
tensors only (keys matching ``--pattern``, Hugging Face's ``...norm.weight``
by default): each shard's header is validated and just those tensors are
read, so a 100 GB model costs the norms' bytes. ``config.json`` names the
convention: ``model_type`` picks the preset (:data:`MODEL_TYPES`) and
``rms_norm_eps`` (``layer_norm_epsilon`` for T5) the eps, unless ``--preset``
is given. Writing produces the same layout holding the norms: shards of at
most :data:`SHARD_BYTES` and an index.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from rmsnorm_core.io._atomic import write_atomic
from rmsnorm_core.io._atomic_folder import replacing_folder
from rmsnorm_core.io._hf_sidecar import SIDECAR, read_sidecar, sidecar_bytes, writable_target
from rmsnorm_core.io._layouts import (
    HF_NORM_KEYS,
    compile_pattern,
    layers_from_state_arrays,
    state_arrays_from_layers,
)
from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.io._safetensors import read_file, read_regular, serialize
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError, RMSNormWarning
from rmsnorm_core.spec._json import loads_strict
from rmsnorm_core.spec._spec import RMSNormSpec

INDEX = "model.safetensors.index.json"
SHARD_BYTES = 2 * 1024**3
#: Hugging Face ``model_type`` -> the preset its norms compute (measured by infer_spec
#: on transformers 5.x's classes: see parity_tests/test_infer_spec.py).
MODEL_TYPES = {
    **dict.fromkeys(
        ("llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe"), "llama"
    ),
    **dict.fromkeys(("gemma", "gemma2", "gemma3", "gemma3_text"), "gemma"),
    "olmo2": "olmo2",
    **dict.fromkeys(("t5", "mt5"), "t5"),
}


def is_hf_folder(path: Path) -> bool:
    """A folder holding ``model.safetensors.index.json`` (or that file itself)."""
    return (path.is_dir() and (path / INDEX).is_file()) or path.name == INDEX


def target_folder(path: Path | str) -> Path:
    """The folder a Hugging Face path names: ``path`` itself, or its parent when ``path``
    is the folder's ``model.safetensors.index.json`` (the folder read, or replaced whole
    by :func:`write_layers`)."""
    path = Path(path)
    return path.parent if path.name == INDEX else path


MAX_JSON_BYTES = 16 * 1024 * 1024
"""A config.json or index larger than this is refused rather than read (real ones are KiB)."""


def _json(path: Path, what: str) -> Any:
    """Parse a small JSON file: a regular file only (a FIFO would block, ``/dev/zero``
    never ends), at most :data:`MAX_JSON_BYTES` read."""
    raw = read_regular(path, what, MAX_JSON_BYTES)
    return loads_strict(raw, f"{what} {str(path)!r}")


def spec_from_config(folder: Path) -> RMSNormSpec:
    """The preset ``config.json``'s ``model_type`` names, with its eps.

    Raises:
        RMSNormUsageError: ``model_type`` is missing, not a string or not known.
        RMSNormError: the eps field is not a number (``true`` is not 1.0), or the
            spec refuses its value.
    """
    config = _json(folder / "config.json", "config")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str) or model_type not in MODEL_TYPES:
        raise RMSNormUsageError(
            f"config.json has model_type={model_type!r}, whose norms this library does not know; "
            f"pass --preset (known: {', '.join(sorted(MODEL_TYPES))})"
        )
    spec = RMSNormSpec.preset(MODEL_TYPES[model_type])
    field = "rms_norm_eps" if "rms_norm_eps" in config else "layer_norm_epsilon"
    eps = config.get(field)
    if eps is None:
        return spec
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise RMSNormError(f"config.json has {field}={eps!r}; expected a number (the norms' eps)")
    return spec.replace(eps=float(eps))


#: config.json's sub-model fields -> the key segments of their tensors
SUB_MODELS = {
    "vision_config": ("vision_tower", "vision_model"),
    "audio_config": ("audio_tower", "audio_model"),
}


def _foreign_segments(folder: Path) -> dict[str, str]:
    """Key segments of sub-models whose ``model_type`` is not a known RMSNorm family
    (Gemma3's SigLIP vision tower: LayerNorms) -> that model_type."""
    if not (folder / "config.json").exists():
        return {}
    config = _json(folder / "config.json", "config")
    out: dict[str, str] = {}
    for field, segments in SUB_MODELS.items():
        sub = config.get(field) if isinstance(config, dict) else None
        if isinstance(sub, dict) and sub.get("model_type") not in MODEL_TYPES:
            out.update(dict.fromkeys(segments, str(sub.get("model_type"))))
    return out


def _shard(folder: Path, shard: Any, key: str) -> Path:
    """The shard file an index entry names: a plain file name in the folder."""
    if not isinstance(shard, str) or "\0" in shard or not shard or Path(shard).name != shard:
        raise RMSNormError(
            f"index maps {key!r} to shard {shard!r}; expected a file name inside the "
            "checkpoint folder"
        )
    return folder / shard


def _read_shard(folder: Path, shard: str, keys: set[str]) -> dict[str, Any]:
    """The ``keys`` of one shard; an error if the shard lacks one the index promised."""
    got = read_file(_shard(folder, shard, min(keys)), keys.__contains__)[1]
    missing = sorted(keys - set(got))
    if missing:
        raise RMSNormError(
            f"index maps {missing[0]!r} to shard {shard!r}, which does not hold it "
            f"({len(missing)} tensor(s) missing)"
        )
    return got


def read_layers(
    path: Path, spec: RMSNormSpec | None, pattern: str | None, infer: Collection[str]
) -> dict[str, NeutralLayer]:
    """The norms of a sharded checkpoint folder (module docstring).

    Each tensor's owner decides: tensors of a sub-model whose norms are not
    RMSNorms (config.json's ``vision_config`` of a Gemma3 image-text model, a
    SigLIP tower of LayerNorms) are left out, and so, where config.json decides
    the spec, is a norm with a bias its model type's norms do not have; each is
    named in one warning. A tensor the index maps to a shard that lacks it is an
    error naming both.
    """
    folder = target_folder(path)
    index = _json(folder / INDEX, "index")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise RMSNormError(f"index {str(folder / INDEX)!r} has no weight_map object")
    if spec is None and (folder / SIDECAR).is_file():  # our own --to hf output
        return read_sidecar(
            folder, weight_map, _json, lambda shard, keys: _read_shard(folder, shard, keys)
        )
    from_config = spec is None
    spec = spec or spec_from_config(folder)
    foreign = _foreign_segments(folder)
    regex = compile_pattern(pattern or HF_NORM_KEYS)
    wanted: dict[Path, set[str]] = {}
    left_out: dict[str, str] = {}
    for key in weight_map:
        match = regex.match(key) if isinstance(key, str) else None
        if not match:
            continue
        layer = match.group("layer")
        owner = next((foreign[s] for s in key.split(".") if s in foreign), None)
        if owner is not None:
            left_out[layer] = f"a {owner} sub-model's norm"
            continue
        if from_config and not spec.use_bias and f"{layer}.bias" in weight_map:
            left_out[layer] = "it has a bias, which this model type's RMSNorms do not"
            continue
        for name in (key, f"{layer}.bias"):
            if name in weight_map:
                wanted.setdefault(_shard(folder, weight_map[name], name), set()).add(name)
    if left_out:
        warnings.warn(
            f"left out {len(left_out)} norm(s) that are not RMSNorms of this model: "
            + "; ".join(f"{name} ({why})" for name, why in sorted(left_out.items())),
            RMSNormWarning,
            stacklevel=2,
        )
    arrays: dict[str, Any] = {}
    for shard_path, keys in sorted(wanted.items()):
        arrays.update(_read_shard(folder, shard_path.name, keys))
    return layers_from_state_arrays(arrays, spec, pattern=pattern or HF_NORM_KEYS, infer=infer)


def write_layers(path: Path, layers: Mapping[str, NeutralLayer]) -> None:
    """Shards and an index holding the norms (``<layer>.weight``, ``<layer>.bias``), and
    ``rmsnorm_layers.json`` with each layer's spec; into a new or empty folder or over a
    previous output of this writer, never into a model folder (``_hf_sidecar.py``)."""
    folder = target_folder(path)
    writable_target(folder, INDEX, _json)  # empty, absent, or all ours: replaced whole
    missing = sorted(n for n, la in layers.items() if la.scale is None)
    if missing:
        raise RMSNormError(
            f"--to hf: layer(s) {missing} have no scale; a Hugging Face folder holds their "
            "tensors only (write a neutral checkpoint instead)"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tensors = state_arrays_from_layers(layers)
    shards: list[dict[str, Any]] = [{}]
    size = 0
    for key in sorted(tensors):
        if shards[-1] and size + tensors[key].nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = tensors[key]
        size += tensors[key].nbytes
    # built beside the old folder and swapped in: shards, specs and index always agree
    with replacing_folder(folder) as new:
        new.mkdir()
        weight_map = {}
        for i, shard in enumerate(shards, 1):
            name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            write_atomic(new / name, serialize(shard, {"format": "pt"}))
            weight_map.update(dict.fromkeys(shard, name))
        write_atomic(new / SIDECAR, sidecar_bytes(layers))
        total = sum(a.nbytes for a in tensors.values())
        doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
        write_atomic(new / INDEX, json.dumps(doc, indent=2, sort_keys=True).encode())
