"""The checkpoint formats ``rmsnorm convert`` reads and writes, and how a path's format
is told: the built-in ones (the neutral checkpoint, a torch-style safetensors state
dict, a Hugging Face folder), read here without any framework, then every format a
backend registers (``rmsnorm_core.backends``).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from rmsnorm_core.io._atomic import write_atomic
from rmsnorm_core.io._checkpoint import load, save
from rmsnorm_core.io._hf_checkpoint import is_hf_folder
from rmsnorm_core.io._hf_checkpoint import read_layers as hf_read
from rmsnorm_core.io._hf_checkpoint import write_layers as hf_write
from rmsnorm_core.io._layouts import (
    HF_NORM_KEYS,
    compile_pattern,
    layers_from_state_arrays,
    state_arrays_from_layers,
)
from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.io._safetensors import read_file, read_header, serialize
from rmsnorm_core.registry import _backends
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError, did_you_mean
from rmsnorm_core.spec._spec import RMSNormSpec


def _read_neutral(path: Path, spec: Any, pattern: Any, infer: Any) -> dict[str, NeutralLayer]:
    return load(path)


NEUTRAL = _backends.CheckpointFormat(
    "neutral", (".safetensors",), "", _read_neutral, save, needs_spec=False
)


def _read_torch_safetensors(
    path: Path, spec: RMSNormSpec, pattern: str | None, infer: frozenset[str]
) -> dict[str, NeutralLayer]:
    regex = compile_pattern(pattern or HF_NORM_KEYS)
    keys = set()
    for key in read_header(path).entries:
        match = regex.match(key)
        if match:
            keys |= {key, f"{match.group('layer')}.bias"}
    _, arrays = read_file(path, keys.__contains__)
    return layers_from_state_arrays(arrays, spec, pattern=pattern or HF_NORM_KEYS, infer=infer)


def _write_torch_safetensors(path: Path, layers: dict[str, NeutralLayer]) -> None:
    write_atomic(path, serialize(state_arrays_from_layers(layers), {"format": "pt"}))


TORCH_SAFETENSORS = _backends.CheckpointFormat(
    "torch", (".safetensors",), "torch", _read_torch_safetensors, _write_torch_safetensors
)


def _formats() -> dict[str, list[_backends.CheckpointFormat]]:
    """Format name -> the formats of that name (the built-in ones first)."""
    table: dict[str, list[_backends.CheckpointFormat]] = {
        "neutral": [NEUTRAL],
        "torch": [TORCH_SAFETENSORS],
        "hf": [HF_FOLDER],
    }
    for backend in _backends.backends().values():
        for fmt in backend.formats:
            table.setdefault(fmt.name, []).append(fmt)
    return table


HF_FOLDER = _backends.CheckpointFormat(
    "hf", (".json",), "torch", hf_read, hf_write, spec_from_file=True, detect=is_hf_folder
)


def pick_format(path: Path, given: str | None, reading: bool) -> _backends.CheckpointFormat:
    """The format of ``path``: ``given`` (``--from``/``--to``) where set, else told by the
    contents (a folder, reading) or the extension.

    Raises:
        RMSNormUsageError: an unknown format name (with the close matches) or a path
            whose format cannot be told.
    """
    flag = "--from" if reading else "--to"
    if given is None and reading:
        for fmt in _detecting(path):
            if fmt.detect is not None and fmt.detect(path):
                return fmt
    if given is None and not reading and path.suffix == ".json":
        raise RMSNormUsageError(
            f"DST {str(path)!r}: a .json output names no format (it would become a Hugging "
            "Face folder called so); pass --to hf with a folder path, or a .safetensors file"
        )
    if path.suffix == ".safetensors" and given in (None, "neutral", "torch"):
        # built in: no backend (and no framework import) needed to tell or read them
        if given == "torch" or (
            given is None
            and reading
            and path.is_file()
            and read_header(path).metadata.get("format") != "rmsnorm-bridge"
        ):
            return TORCH_SAFETENSORS
        return NEUTRAL
    table = _formats()
    if given is not None and given not in table:
        raise RMSNormUsageError(
            f"{flag} {given!r} is not a known format; accepted: {', '.join(sorted(table))}"
            f"{did_you_mean(given, table)}"
            f"{_backends.not_installed_hint()}"
        )
    names = [given] if given else list(table)
    matches = [f for n in names for f in table[n] if path.suffix in f.extensions]
    if given and not matches:
        return table[given][-1]  # e.g. --to torch out.weights: the backend's own writer
    if not matches:
        raise RMSNormUsageError(
            f"cannot tell the format of {str(path)!r} from its extension; pass "
            f"{flag} {{{','.join(sorted(table))}}}{_backends.not_installed_hint()}"
        )
    return matches[0]


def load_neutral(path: str, what: str) -> dict[str, NeutralLayer]:
    """The layers of the neutral checkpoint ``path`` (``rmsnorm verify --weights``,
    ``rmsnorm export``); a checkpoint of another format ``convert`` reads is refused
    with the command that converts it, not as a damaged file.

    Raises:
        RMSNormError: ``what`` names the argument in the message.
    """
    try:
        return load(path)
    except RMSNormError:
        fmt = NEUTRAL
        if Path(path).is_file() or Path(path).is_dir():  # never a FIFO or a device
            try:
                fmt = pick_format(Path(path), None, True)
            except RMSNormError:  # no format knows it: the neutral reader's error stands
                pass
        if fmt is NEUTRAL:
            raise
    preset = " --preset NAME" if fmt.needs_spec and not fmt.spec_from_file else ""
    dst = shlex.quote(str(Path(path).with_name(f"{Path(path).stem}-norms.safetensors")))
    raise RMSNormError(
        f"{what} {path!r} is in the {fmt.name} format, not a neutral checkpoint; "
        f"convert it first: rmsnorm convert {shlex.quote(path)} {dst}{preset}"
    )


def _detecting(path: Path) -> list[_backends.CheckpointFormat]:
    """Formats that recognize a path by its contents: built-in first, then backends'
    (asked only for a folder: files go by extension, with no framework import)."""
    out = [HF_FOLDER]
    if path.is_dir():
        out += [f for b in _backends.backends().values() for f in b.formats if f.detect]
    return out
