"""Layer-name mapping between Flax and PyTorch module trees, exactly invertible.

Neutral checkpoints store whatever names the source framework used, joined
with ``.``. The frameworks name list members differently: Flax linen calls
the third layer ``layers_2``, PyTorch ``layers.2``. A PyTorch name can itself
end in ``_<digits>`` (``norm_1``), which Flax would read as a list member, so
such a segment gets one more underscore on the way to Flax (``norm__1``) and
loses it on the way back. Hence ``flax_to_torch(torch_to_flax(n)) == n`` for
every PyTorch name and ``torch_to_flax(flax_to_torch(n)) == n`` for every
Flax name: a round trip lands every layer where it was. Parameter names map
``scale`` <-> ``weight`` (``bias`` stays) in the converters.
"""

from __future__ import annotations

import re

from rmsnorm_core.spec._errors import RMSNormError

# a segment ending in underscores and digits, with something before them
_SUFFIX = re.compile(r"^(.+?)(_+)(\d+)$")


def _escape(segment: str) -> str:
    match = _SUFFIX.match(segment)
    if not match:
        return segment
    head, underscores, digits = match.groups()
    return f"{head}_{underscores}{digits}"


def torch_to_flax(name: str) -> str:
    """``"layers.0.norm"`` -> ``"layers_0.norm"``; ``"norm_1"`` -> ``"norm__1"``.

    Raises:
        RMSNormError: a segment ending in ``_`` is followed by a list index
            (``"a_.0"``): Flax's ``a__0`` would read back as ``a_0``.
    """
    out: list[str] = []
    for segment in name.split("."):
        if segment.isdigit() and out:
            if out[-1].endswith("_"):
                raise RMSNormError(
                    f"layer name {name!r} has no Flax name that maps back to it: a segment "
                    "ending in '_' before a list index; rename the module"
                )
            out[-1] = f"{out[-1]}_{segment}"
        else:
            out.append(_escape(segment))
    return ".".join(out)


def _split(segment: str) -> list[str]:
    match = _SUFFIX.match(segment)
    if not match:
        return [segment]
    head, underscores, digits = match.groups()
    if len(underscores) > 1:  # an escaped literal: drop the added underscore, stop
        return [f"{head}{underscores[1:]}{digits}"]
    return [*_split(head), digits]


def flax_to_torch(name: str) -> str:
    """``"layers_0.norm"`` -> ``"layers.0.norm"``; ``"norm__1"`` -> ``"norm_1"``."""
    return ".".join(part for segment in name.split(".") for part in _split(segment))


def identity(name: str) -> str:
    """Keep names as they are."""
    return name


NAME_MAPS = {"flax-to-torch": flax_to_torch, "torch-to-flax": torch_to_flax, "none": identity}
"""Layer-name maps by the name ``rmsnorm convert --names`` takes."""
