"""Core's dtype names <-> torch dtypes, in TorchScript (the one torch-specific mapping)."""

from __future__ import annotations

import torch


def torch_dtype(name: str) -> torch.dtype:
    """Map a core dtype name to the torch dtype."""
    if name == "float16":
        return torch.float16
    if name == "bfloat16":
        return torch.bfloat16
    if name == "float64":
        return torch.float64
    return torch.float32


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype of a complex one (complex64 -> float32, complex128 -> float64), which
    a spec records for complex parameters; any other dtype as it is."""
    if dtype == torch.complex64:
        return torch.float32
    if dtype == torch.complex128:
        return torch.float64
    return dtype


def torch_dtype_name(dtype: torch.dtype) -> str:
    """Core's name for a torch dtype (``torch.bfloat16`` -> ``"bfloat16"``); other dtypes
    keep their own name (``"int32"``, ``"float8_e4m3fn"``) so that core's checks can
    refuse them by name."""
    names = {
        torch.float16: "float16",
        torch.bfloat16: "bfloat16",
        torch.float32: "float32",
        torch.float64: "float64",
        torch.int8: "int8",
        torch.int16: "int16",
        torch.int32: "int32",
        torch.int64: "int64",
        torch.uint8: "uint8",
        torch.bool: "bool",
        torch.complex64: "complex64",
        torch.complex128: "complex128",
        torch.float8_e4m3fn: "float8_e4m3fn",
        torch.float8_e5m2: "float8_e5m2",
        torch.float8_e4m3fnuz: "float8_e4m3fnuz",
        torch.float8_e5m2fnuz: "float8_e5m2fnuz",
        torch.float8_e8m0fnu: "float8_e8m0fnu",
    }
    if dtype in names:
        return names[dtype]
    return str(dtype).replace("torch.", "")  # eager: uint16, ...; TorchScript: a number
