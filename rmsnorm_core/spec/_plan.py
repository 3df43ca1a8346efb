"""Decisions made once in core, executed by every backend.

A backend asks core for the canonical axes, the parameter shape, the partial
count and the dtype plan, then maps them onto its primitives; it never
re-derives a default.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from rmsnorm_core.spec import _rules
from rmsnorm_core.spec._dtypes import check_float_dtype, dtype_name, promote
from rmsnorm_core.spec._errors import RMSNormShapeError, RMSNormTypeError
from rmsnorm_core.spec._rules import DtypePlan
from rmsnorm_core.spec._spec import RMSNormSpec


def canonical_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    """Return ``axes`` for an input of ``rank``: non-negative and sorted.

    Raises:
        RMSNormError: an axis is out of range or repeated, or ``rank`` is 0.
    """
    return tuple(_rules.canonical_dims([int(a) for a in axes], int(rank)))


def param_shape(spec: RMSNormSpec, input_shape: Sequence[int]) -> tuple[int, ...]:
    """Return the shape of ``scale`` and ``bias``: the normalized dims in order.

    E.g. NCHW normalized over C (``axes=(1,)``) gives ``(C,)``; ``axes=(-2,
    -1)`` of a rank-3 input gives ``(d1, d2)``.
    """
    shape = tuple(int(d) for d in input_shape)
    return tuple(shape[a] for a in canonical_axes(spec.axes, len(shape)))


def sample_shape(
    spec: RMSNormSpec, pshape: Sequence[int], batch: Sequence[int] = (5, 3), rank: int | None = None
) -> tuple[int, ...]:
    """An input shape for parameters of ``pshape``: their sizes at the spec's axes,
    the ``batch`` sizes (cycled) elsewhere.

    The rank is ``len(axes) + 2`` for negative (trailing) axes, else the
    largest positive axis plus three (NCHW over C -> rank 4), unless given.
    """
    axes = spec.axes
    if rank is None:
        positive = [a for a in axes if a >= 0]
        rank = max(len(axes) + 2, (max(positive) + 3) if positive else 0)
    dims = canonical_axes(axes, rank)
    sizes = iter(pshape)
    free = 0
    shape = []
    for d in range(rank):
        if d in dims:
            shape.append(int(next(sizes)))
        else:
            shape.append(int(batch[free % len(batch)]))
            free += 1
    return tuple(shape)


def dtype_plan(spec: RMSNormSpec, input_dtype: Any, param_dtype: Any | None = None) -> DtypePlan:
    """Return the :class:`DtypePlan` for an input dtype and parameter dtype.

    Args:
        spec: the spec.
        input_dtype: dtype (or name) of ``x``: float16, bfloat16, float32 or
            float64.
        param_dtype: dtype of the parameters actually present; defaults to
            ``spec.param_dtype``. Ignored when the spec has no parameters.

    Raises:
        RMSNormTypeError: a dtype is not a floating dtype.
    """
    inp = check_float_dtype("x", input_dtype)
    par = check_float_dtype("param_dtype", spec.param_dtype if param_dtype is None else param_dtype)
    has_params = spec.use_scale or spec.use_bias
    return _rules.resolve_dtypes(spec.recipe, inp, par if has_params else "")


def check_param(name: str, shape: Sequence[int], dtype: Any, expected_shape: Sequence[int]) -> None:
    """Raise unless a parameter has the expected shape and a float dtype.

    Raises:
        RMSNormError: naming ``name``, the shape received and the one expected.
        RMSNormTypeError: ``dtype`` is not a floating dtype.
    """
    check_float_dtype(name, dtype)
    _rules.check_param_shape(name, [int(d) for d in shape], [int(d) for d in expected_shape])


def check_params(
    spec: RMSNormSpec,
    input_shape: Sequence[int],
    scale: Any,
    bias: Any,
    expected_shape: Sequence[int] | None = None,
) -> str | None:
    """Check the parameters a caller passes against the spec and the input shape.

    Args:
        spec: the spec.
        input_shape: the shape of ``x``.
        scale: an array (anything with ``.shape`` and ``.dtype``) or None.
        bias: the same, for the bias.
        expected_shape: the parameters' shape where they span other axes than
            the spec's (flax's ``feature_axes``); default ``param_shape``.

    Returns:
        The promoted dtype name of the parameters given, or None if none.

    Raises:
        RMSNormError: a parameter the spec does not use, or a wrong shape.
        RMSNormTypeError: a non-floating parameter.
    """
    pshape = param_shape(spec, input_shape) if expected_shape is None else expected_shape
    dtypes = []
    for name, value, used in (("scale", scale, spec.use_scale), ("bias", bias, spec.use_bias)):
        if value is None:
            continue
        if not used:
            _rules.check_unused(name, name)
        check_param(name, value.shape, value.dtype, pshape)
        dtypes.append(dtype_name(value.dtype))
    return promote(*dtypes) if dtypes else None


def check_residual(shape: Sequence[int], dtype: Any, x_shape: Sequence[int]) -> None:
    """Raise unless ``residual`` matches ``x``'s shape and is a float dtype."""
    check_float_dtype("residual", dtype)
    _rules.check_residual_shape([int(d) for d in shape], [int(d) for d in x_shape])


def check_normalized_shape(
    normalized_shape: Any,
) -> tuple[int, ...]:
    """Validate a torch-style ``normalized_shape`` (int or sequence of ints >= 0).

    Raises:
        RMSNormTypeError: a dim is not an int (a bool, a string, a list), as torch's
            ``TypeError`` for it.
        RMSNormShapeError: no dim, or a negative one (a ``RuntimeError``, as torch's
            for a negative size).
    """
    given = normalized_shape
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    try:
        dims = tuple(normalized_shape)
    except TypeError:
        raise RMSNormTypeError(
            f"normalized_shape={given!r} is not accepted; expected an int or a sequence of ints"
        ) from None
    refused = (
        f"normalized_shape={given!r} is not accepted; expected an int >= 0 or a "
        "non-empty sequence of ints >= 0"
    )
    if any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in dims):
        raise RMSNormTypeError(refused)
    if not dims or any(d < 0 for d in dims):
        raise RMSNormShapeError(refused)
    return tuple(int(d) for d in dims)


__all__ = [
    "DtypePlan",
    "canonical_axes",
    "check_normalized_shape",
    "check_param",
    "check_params",
    "check_residual",
    "dtype_name",
    "dtype_plan",
    "param_shape",
    "sample_shape",
]
