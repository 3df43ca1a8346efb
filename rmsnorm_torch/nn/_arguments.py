"""Eager checks of the arguments of every public entry (functions and modules), before any
attribute of them is read: torch's own functions raise ``TypeError`` naming the argument
(``rms_norm(): argument 'input' must be Tensor, not list``) where an unchecked call would
leak an ``AttributeError`` from deep inside. Never compiled by TorchScript (the callers
guard with ``torch.jit.is_scripting()``; scripted code has typed arguments already).
"""

from __future__ import annotations

import numbers
from typing import Any, List

import torch
from torch import Tensor

from rmsnorm_core import RMSNormTypeError
from rmsnorm_torch.nn._given import dtype_value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..."


class _LayoutError(RMSNormTypeError, NotImplementedError):
    """A tensor of a layout no kernel here computes: an ``RMSNormTypeError`` that is also
    the ``NotImplementedError`` (a ``RuntimeError``) torch's own ops raise for it, so
    ``except RuntimeError`` written for ``torch.nn.RMSNorm`` still catches it."""


def check_tensor(name: str, value: Any, optional: bool = False) -> None:
    """Raise unless ``value`` is a dense Tensor (or None where ``optional``). A sparse,
    nested or other non-strided tensor is refused by name here, where torch's ops would
    raise ``NotImplementedError`` from a kernel (``aten::mean.dim``) for a sparse one and
    an internal error for a nested one.

    Raises:
        rmsnorm_core.RMSNormTypeError: ``"weight must be a Tensor or None, got list"``;
            for a layout, also a ``NotImplementedError`` as torch's: ``"x must be a
            dense tensor (layout torch.strided), got layout torch.sparse_coo; ..."``.
    """
    if isinstance(value, Tensor):
        if value.is_nested:
            got, fix = "a nested tensor", f"normalize each of {name}.unbind()"
        elif value.layout is not torch.strided:
            got, fix = f"layout {value.layout}", f"convert it first: {name}.to_dense()"
        else:
            return
        raise _LayoutError(
            f"{name} must be a dense tensor (layout torch.strided), got {got}; {fix}"
        )
    if optional and value is None:
        return
    accepted = "a Tensor or None" if optional else "a Tensor"
    raise RMSNormTypeError(f"{name} must be {accepted}, got {type(value).__name__}")


def refuse_complex(name: str, dtype: Any) -> None:
    """Raise where ``dtype`` (of ``ResidualRMSNorm``'s ``name``) is complex: the residual
    sum has no complex rule, so its parameters are real (every call form checks this).

    Raises:
        rmsnorm_core.RMSNormTypeError: ``"weight.dtype=torch.complex64 is not accepted ..."``.
    """
    dtype = dtype_value(dtype)  # Python's complex names complex128
    if isinstance(dtype, torch.dtype) and dtype.is_complex:
        raise RMSNormTypeError(
            f"{name}={dtype} is not accepted by ResidualRMSNorm; its parameters are real: "
            "float16, bfloat16, float32 or float64 (RMSNorm computes complex parameters as "
            "torch.nn.RMSNorm does)"
        )


def _size(value: Any) -> Any:
    """``value`` as one size (an int, a SymInt kept as it is), or None: a bool, a str,
    a float is not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, torch.SymInt)):
        return value
    if isinstance(value, numbers.Integral):  # NumPy's integers
        return int(value)
    return None


def normalized_shape_list(value: Any) -> List[Any]:
    """``normalized_shape`` (an int, or a list, tuple or ``torch.Size`` of ints) as a list.

    Raises:
        rmsnorm_core.RMSNormTypeError: naming the value; ``True`` is not ``1`` and
            ``"4"`` is not ``4``.
    """
    single = _size(value)
    if single is not None:
        return [single]
    if isinstance(value, (list, tuple)):  # torch.Size is a tuple
        sizes = [_size(d) for d in value]
        if all(d is not None for d in sizes):
            return sizes
    raise RMSNormTypeError(
        f"normalized_shape={_shown(value)} is not accepted; expected an int or a list, tuple "
        "or torch.Size of ints (a bool or a string is not a size)"
    )


def check_eps(eps: Any) -> None:
    """Raise unless ``eps`` is None or a real number (a one-element tensor, as torch
    reads it, too); a bool or a string is refused.

    Raises:
        rmsnorm_core.RMSNormTypeError: ``"eps='0.1' is not accepted; ..."``.
    """
    if eps is None or isinstance(eps, Tensor):
        return
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise RMSNormTypeError(
            f"eps={_shown(eps)} is not accepted; eps must be a float (None for the "
            "epsilon of the dtype torch computes in)"
        )
