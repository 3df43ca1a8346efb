"""Flax msgpack params files for ``rmsnorm convert`` (``flax.serialization``: no pickle).

Reading refuses anything but a regular file and decodes one msgpack object
from a stream, so a file that is not a params tree (``/dev/zero``, a sparse
file of zeros, a truncated download) fails at its first bytes instead of
being read whole into memory. Writing is atomic.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import msgpack
from flax import serialization

from rmsnorm_core import NeutralLayer, RMSNormError, RMSNormSpec, open_regular, write_atomic
from rmsnorm_flax.interop._bridge import layers_from_params, params_from_layers


def read_msgpack(path: Path) -> Any:
    """The params tree of a ``flax.serialization.msgpack_serialize`` file."""
    fd = open_regular(path, "input")
    with os.fdopen(fd, "rb") as handle:
        unpacker = msgpack.Unpacker(
            handle,
            ext_hook=serialization._msgpack_ext_unpack,
            raw=False,
            strict_map_key=False,
        )
        try:
            tree = unpacker.unpack()
        except Exception as err:  # msgpack raises several unrelated types on corrupt input
            raise RMSNormError(
                f"input {str(path)!r} is not Flax msgpack: {str(err)[:200]}"
            ) from None
        if not isinstance(tree, dict):
            raise RMSNormError(
                f"input {str(path)!r} is not Flax msgpack params: it starts with a "
                f"{type(tree).__name__}, not a dict"
            )
        if unpacker.tell() != os.fstat(handle.fileno()).st_size:
            raise RMSNormError(f"input {str(path)!r} has data after the params tree")
    try:
        return serialization._unchunk_array_leaves_in_place(tree)
    except Exception as err:
        raise RMSNormError(f"input {str(path)!r} is not Flax msgpack params: {err}") from None


def read_layers(
    path: Path, spec: RMSNormSpec, pattern: Any, infer: Collection[str]
) -> dict[str, NeutralLayer]:
    """The norms of a params file, as ``spec`` (see ``layers_from_params``)."""
    return layers_from_params(read_msgpack(path), spec, infer=infer)


def save_msgpack(path: Path, layers: Mapping[str, NeutralLayer]) -> None:
    """Write ``{"params": ...}`` of the layers, atomically."""
    write_atomic(path, serialization.msgpack_serialize({"params": params_from_layers(layers)}))
