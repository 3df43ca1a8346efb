"""Layer-name mapping between Flax and PyTorch module trees.

Neutral checkpoints store whatever names the source framework used, joined
with ``.``. The two frameworks name list members differently: Flax linen
calls the third layer ``layers_2``, PyTorch ``layers.2``. These functions map
one onto the other; parameter names map ``scale`` <-> ``weight`` (``bias``
stays). Pass your own callables to the converters for other conventions.
"""

from __future__ import annotations

import re

_FLAX_INDEX = re.compile(r"^(.*\D)_(\d+)$")


def flax_to_torch(name: str) -> str:
    """``"layers_0.norm"`` -> ``"layers.0.norm"`` (a trailing ``_<int>`` becomes a segment)."""
    out = []
    for segment in name.split("."):
        match = _FLAX_INDEX.match(segment)
        out.extend(match.groups() if match else (segment,))
    return ".".join(out)


def torch_to_flax(name: str) -> str:
    """``"layers.0.norm"`` -> ``"layers_0.norm"`` (an integer segment joins its predecessor)."""
    out: list[str] = []
    for segment in name.split("."):
        if segment.isdigit() and out:
            out[-1] = f"{out[-1]}_{segment}"
        else:
            out.append(segment)
    return ".".join(out)


def identity(name: str) -> str:
    """Keep names as they are."""
    return name


NAME_MAPS = {"flax-to-torch": flax_to_torch, "torch-to-flax": torch_to_flax, "none": identity}
