"""Checks of single spec field values, with messages that name the field and the value."""

from __future__ import annotations

import math
import numbers
from typing import Any

from rmsnorm_core.spec._errors import RMSNormError, RMSNormTypeError, did_you_mean
from rmsnorm_core.spec._rules import float_dtypes


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(repr(v) for v in values)


def require_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise RMSNormTypeError(
            f"{field}={value!r} is not accepted; {field} must be a bool (True or False)"
        )
    return value


def _shown(value: Any) -> str:
    """``repr(value)``, cut short: a 400-digit int must not fill the message."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:24]}...({len(text)} characters)"


def require_real(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RMSNormTypeError(
            f"{field}={_shown(value)} is not accepted; {field} must be a real number"
        )
    try:
        return float(value)
    except OverflowError:  # an int past float's range (10**400)
        raise RMSNormError(
            f"{field}={_shown(value)} is not accepted; it is too large for a float "
            "(at most about 1.8e308)"
        ) from None


MAX_RANK = 64
"""No axis reaches past this (NumPy's limit on dims, which the float64 reference uses)."""


def canonical_axes_field(value: Any) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        raise RMSNormTypeError(
            f"axes={value!r} is not accepted; axes must be an int or a non-empty tuple of ints"
        )
    for axis in value:
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise RMSNormTypeError(
                f"axes={tuple(value)!r} is not accepted; every axis must be an int, got {axis!r}"
            )
    axes = tuple(int(a) for a in value)
    for axis in axes:
        if not -MAX_RANK <= axis < MAX_RANK:
            raise RMSNormError(
                f"axes={_shown(axes)} is not accepted; axis {_shown(axis)} is out of range: every "
                f"axis must satisfy "
                f"-{MAX_RANK} <= axis < {MAX_RANK} (arrays have at most {MAX_RANK} dims)"
            )
    if not axes:
        raise RMSNormError(
            "axes=() is not accepted; axes must name at least one axis to normalize over"
        )
    if len(set(axes)) != len(axes):
        raise RMSNormError(f"axes={axes!r} is not accepted; axes must not repeat an axis")
    return axes


def require_choice(field: str, value: Any, accepted: list[str]) -> str:
    if not isinstance(value, str) or value not in accepted:
        raise RMSNormError(
            f"{field}={value!r} is not accepted; expected one of {_quoted(tuple(accepted))}"
            f"{did_you_mean(value, accepted)}"
        )
    return value


#: The smallest normal number of the dtypes a statistic is held in.
_TINY = {"float32": 1.1754943508222875e-38, "float64": 2.2250738585072014e-308}


def require_eps(given: Any, compute_dtype: Any) -> float:
    """``eps`` as a float: finite, >= 0, and not between 0 and the compute dtype's
    smallest normal (there it flushes to 0 in the backends, and a zero row divides by 0,
    while the float64 reference keeps it).

    0 is accepted because every upstream accepts it (``torch.nn.RMSNorm(eps=0)``,
    ``flax.linen.RMSNorm(epsilon=0)``, Hugging Face's norms): then a row whose mean
    square is 0 divides by 0 and gives NaN, in the reference as upstream. A negative
    eps (torch's functional tests pass -0.5) divides by 0 or takes the root of a
    negative number on rows no spec can say in advance: refused (the torch backend's
    functional drop-in hands it to torch's own op)."""
    eps = require_real("eps", given)
    if not (math.isfinite(eps) and eps >= 0):
        raise RMSNormError(f"eps={given!r} is not accepted; eps must be a finite float >= 0")
    tiny = _TINY["float64" if compute_dtype == "float64" else "float32"]
    if 0 < eps < tiny:
        raise RMSNormError(
            f"eps={given!r} is not accepted; it underflows the compute dtype (smallest normal "
            f"{tiny!r}); eps must be 0 or >= {tiny!r}"
        )
    return eps


def choices(field: str) -> list[str]:
    """The accepted values of a string spec field (empty for other fields)."""
    if field == "eps_placement":
        return ["inside", "outside"]
    if field == "compute_dtype":
        return ["float32", "float64", "input"]
    if field == "cast_order":
        return ["after_scale", "before_scale"]
    if field == "output_dtype":
        return ["input", "promote", "param"]
    if field == "param_dtype":
        return float_dtypes()
    if field == "residual_dtype":
        return ["input", "float32"]
    if field == "scale_multiplies":
        return ["normalized", "inverse"]
    return []
