"""Torch state-dict files (``.pt``/``.pth``/``.bin``) for ``rmsnorm convert``.

Read with ``torch.load(weights_only=True)`` (tensors and containers only,
never code), after refusing anything but a regular file; written atomically.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from rmsnorm_core import (
    HF_NORM_KEYS,
    NeutralLayer,
    RMSNormError,
    RMSNormSpec,
    open_regular,
    write_atomic,
)
from rmsnorm_torch.interop._bridge import layers_from_state_dict, state_dict_from_layers


def read_state_dict(path: Path) -> Dict[str, Any]:
    """``torch.load(weights_only=True)`` of a regular file."""
    os.close(open_regular(path, "input"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RMSNormError(
            f"input {str(path)!r} is not a torch state dict loadable with "
            f"weights_only=True: {first[:200]}"
        ) from None
    if not isinstance(state, dict):
        raise RMSNormError(f"input {str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


def read_layers(
    path: Path, spec: RMSNormSpec, pattern: Optional[str], infer: Collection[str]
) -> Dict[str, NeutralLayer]:
    """The norms of a state-dict file, as ``spec`` (see ``layers_from_state_dict``)."""
    return layers_from_state_dict(
        read_state_dict(path), spec, pattern=pattern or HF_NORM_KEYS, infer=infer
    )


def save_state_dict(path: Path, layers: Mapping[str, NeutralLayer]) -> None:
    """``torch.save`` of the layers' state dict, through an atomic write."""
    buffer = io.BytesIO()
    torch.save(state_dict_from_layers(layers), buffer)
    write_atomic(path, buffer.getvalue())
