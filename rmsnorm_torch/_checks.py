"""Input checks written in TorchScript, so scripted modules check as eager ones do.

Core's checks (``rmsnorm_core.canonical_axes``, ``check_param``, ...) are plain
Python that TorchScript cannot call; these mirror their rules and wording, and
``parity_tests/test_torch_errors.py`` asserts the two agree. In eager mode
they raise ``rmsnorm_core.RMSNormError`` (``RMSNormTypeError`` for dtypes);
in a scripted module TorchScript allows only builtin exceptions, so the error
surfaces as ``torch.jit.Error`` whose text ends in
``builtins.ValueError: <the same message>``.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from rmsnorm_core import RMSNormError, RMSNormTypeError


def fail(message: str) -> None:
    """Raise the library's error (a plain ValueError inside TorchScript)."""
    if torch.jit.is_scripting():
        raise ValueError(message)
    raise RMSNormError(message)


def fail_type(message: str) -> None:
    """Raise the library's type error (a plain ValueError inside TorchScript)."""
    if torch.jit.is_scripting():
        raise ValueError(message)
    raise RMSNormTypeError(message)


def as_tuple(values: List[int]) -> str:
    """Format like Python's tuple repr, ``(5,)`` or ``(1, -1)``, as core's messages do."""
    if len(values) == 1:
        return "({},)".format(values[0])
    return "(" + ", ".join([str(v) for v in values]) + ")"


def dtype_name(dtype: torch.dtype) -> str:
    """Return the name core uses for a torch dtype (``torch.bfloat16`` -> ``"bfloat16"``)."""
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
    }
    if dtype in names:
        return names[dtype]
    return "a non-floating dtype"


def check_float(name: str, t: Tensor) -> None:
    """Raise unless ``t`` has a floating dtype core accepts."""
    if t.dtype not in [torch.float16, torch.bfloat16, torch.float32, torch.float64]:
        fail_type(
            name
            + " has dtype "
            + dtype_name(t.dtype)
            + "; accepted dtypes are "
            + "float16, bfloat16, float32, float64"
        )


def canonical_dims(axes: List[int], rank: int) -> List[int]:
    """Sorted non-negative axes for ``rank``; the rules of ``rmsnorm_core.canonical_axes``."""
    if rank < 1:
        fail(
            "an input of rank 0 (a scalar) cannot be normalized; x must have rank >= 1 "
            "(axes={})".format(as_tuple(axes))
        )
    dims: List[int] = []
    for axis in axes:
        if axis < -rank or axis >= rank:
            fail(
                "axes={} is out of range for an input of rank {}; each axis must satisfy "
                "{} <= axis < {}".format(as_tuple(axes), rank, -rank, rank)
            )
        d = axis % rank
        if d in dims:
            fail(
                "axes={} name the same axis twice for an input of rank {}; each axis may "
                "appear once".format(as_tuple(axes), rank)
            )
        dims.append(d)
    dims.sort()
    return dims


def check_param(name: str, p: Optional[Tensor], x: Tensor, dims: List[int]) -> None:
    """Raise unless ``p`` is None or a float tensor of the normalized shape on x's device."""
    if p is None:
        return
    check_float(name, p)
    expected = [x.shape[d] for d in dims]
    if list(p.shape) != expected:
        fail(
            "{} has shape {}; expected {}, the sizes of the normalized axes in increasing "
            "axis order".format(name, as_tuple(list(p.shape)), as_tuple(expected))
        )
    if p.device != x.device:
        fail(
            "{} is on device {} but x is on device {}; move the module or the input so "
            "that they share a device".format(name, p.device, x.device)
        )


def check_choice(name: str, value: str, accepted: List[str]) -> None:
    """Raise unless ``value`` is one of ``accepted``."""
    if value not in accepted:
        quoted = ", ".join(["'" + a + "'" for a in accepted])  # core's wording
        fail("{}='{}' is not accepted; expected one of {}".format(name, value, quoted))


@torch.jit.unused
def _check_types(
    eps: float,
    eps_placement: str,
    compute_dtype: str,
    cast_order: str,
    output_dtype: str,
    partial: float,
) -> None:
    import numbers

    for name, value in (("eps", eps), ("partial", partial)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            fail_type("{}={!r} is not accepted; {} must be a real number".format(name, value, name))
    for name, value in (
        ("eps_placement", eps_placement),
        ("compute_dtype", compute_dtype),
        ("cast_order", cast_order),
        ("output_dtype", output_dtype),
    ):
        if not isinstance(value, str):
            fail_type("{}={!r} is not accepted; {} must be a str".format(name, value, name))


def check_options(
    eps: float,
    eps_placement: str,
    compute_dtype: str,
    cast_order: str,
    output_dtype: str,
    partial: float,
) -> None:
    """Raise unless the spec-like options are in range (see ``RMSNormSpec``)."""
    if not torch.jit.is_scripting():  # TorchScript enforces these types itself
        _check_types(eps, eps_placement, compute_dtype, cast_order, output_dtype, partial)
    if not (eps > 0.0 and eps < float("inf")):
        fail("eps={} is not accepted; eps must be a finite float > 0".format(eps))
    if not (partial > 0.0 and partial <= 1.0):
        fail("partial={} is not accepted; partial must satisfy 0 < partial <= 1".format(partial))
    check_choice("eps_placement", eps_placement, ["inside", "outside"])
    check_choice("compute_dtype", compute_dtype, ["float32", "float64", "input"])
    check_choice("cast_order", cast_order, ["after_scale", "before_scale"])
    check_choice("output_dtype", output_dtype, ["input", "promote"])


def check_normalized_shape(x: Tensor, axes: List[int], normalized_shape: List[int]) -> None:
    """Raise unless ``x``'s normalized axes have the sizes ``normalized_shape``."""
    dims = canonical_dims(axes, x.dim())
    sizes = [x.shape[d] for d in dims]
    if sizes != normalized_shape:
        fail(
            "x has shape {} but normalized_shape={} expects its axes {} to have sizes {}; "
            "got {}".format(
                as_tuple(list(x.shape)),
                as_tuple(normalized_shape),
                as_tuple(axes),
                as_tuple(normalized_shape),
                as_tuple(sizes),
            )
        )


def partial_count(partial: float, n: int) -> int:
    """``rmsnorm_core.partial_count`` in TorchScript: ``max(1, floor(p*n))``, 0 if empty."""
    if n <= 0:
        return 0
    if partial >= 1.0:
        return n
    return max(1, min(n, int(partial * n)))
