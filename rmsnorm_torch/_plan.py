"""Core's dtype plan in TorchScript: compute and output dtypes for a call.

These two functions are ``rmsnorm_core.dtype_plan`` restated over torch
dtypes (TorchScript cannot call core); ``parity_tests/test_torch_functional.py``
checks them against core for every spec option and dtype pair.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def compute_dtype_for(compute_dtype: str, in_dtype: torch.dtype) -> torch.dtype:
    """float32 (float64 for float64 inputs), float64, or the input dtype."""
    if compute_dtype == "input":
        return in_dtype
    if compute_dtype == "float64" or in_dtype == torch.float64:
        return torch.float64
    return torch.float32


def output_dtype_for(
    output_dtype: str, in_dtype: torch.dtype, weight: Optional[Tensor], bias: Optional[Tensor]
) -> torch.dtype:
    """The input dtype, or promoted with the dtypes of the parameters present."""
    out = in_dtype
    if output_dtype == "promote":
        if weight is not None:
            out = torch.promote_types(out, weight.dtype)
        if bias is not None:
            out = torch.promote_types(out, bias.dtype)
    return out


def torch_dtype(name: str) -> torch.dtype:
    """Map a core dtype name to the torch dtype."""
    return {
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float32": torch.float32,
        "float64": torch.float64,
    }[name]
