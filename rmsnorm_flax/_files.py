"""Flax msgpack params files for the CLI (``flax.serialization``: no pickle)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flax import serialization

from rmsnorm_core import NeutralLayer, RMSNormError
from rmsnorm_core._checkpoint import write_atomic

from ._bridge import params_from_layers


def read_msgpack(path: Path) -> Any:
    """The params tree of a ``flax.serialization.msgpack_serialize`` file."""
    try:
        return serialization.msgpack_restore(path.read_bytes())
    except Exception as err:  # msgpack raises several unrelated types on corrupt input
        raise RMSNormError(f"input {str(path)!r} is not Flax msgpack: {err}") from None


def save_msgpack(path: Path, layers: Mapping[str, NeutralLayer]) -> None:
    """Write ``{"params": ...}`` of the layers, atomically."""
    write_atomic(path, serialization.msgpack_serialize({"params": params_from_layers(layers)}))
