"""Whether a tensor is a plain one that a custom kernel may take."""

from __future__ import annotations

from typing import Optional

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor


def plain(t: Optional[Tensor]) -> bool:
    """A real, untransformed tensor (or absent): no subclass, no ``torch.func`` wrapper,
    no forward-mode tangent, no ZeroTensor (autograd's storage-less zeros). The CPU
    operator and the Triton kernel run only on those; anything else takes the graph
    path, which supports whatever autograd does. (A ``torch.func`` wrapper has the type
    ``Tensor``: only functorch can tell it apart.)"""
    if t is None:
        return True
    if (type(t) is not Tensor and type(t) is not torch.nn.Parameter) or t._is_zerotensor():
        return False
    if torch._C._functorch.is_functorch_wrapped_tensor(t):
        return False
    return fwAD._current_level < 0 or fwAD.unpack_dual(t).tangent is None


def all_plain(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """:func:`plain` of a call's three tensors."""
    return plain(x) and plain(weight) and plain(bias)
