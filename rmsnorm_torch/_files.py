"""Torch state-dict files for the CLI: read with weights_only=True, written atomically."""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict

import torch

from rmsnorm_core import NeutralLayer, RMSNormError
from rmsnorm_core._checkpoint import write_atomic

from ._bridge import state_dict_from_layers


def read_state_dict(path: Path) -> Dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and containers only, never code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RMSNormError(
            f"input {str(path)!r} is not a torch state dict loadable with "
            f"weights_only=True: {first}"
        ) from None
    if not isinstance(state, dict):
        raise RMSNormError(f"input {str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


def save_state_dict(path: Path, layers: Mapping[str, NeutralLayer]) -> None:
    """``torch.save`` of the layers' state dict, through an atomic write."""
    buffer = io.BytesIO()
    torch.save(state_dict_from_layers(layers), buffer)
    write_atomic(path, buffer.getvalue())
