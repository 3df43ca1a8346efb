"""The spec's rules as backends call them (public): see :mod:`rmsnorm_core._rules`.

Written in the subset of Python TorchScript compiles, so a backend's scripted
code calls these very functions instead of a copy.
"""

from ._rules import (
    Dtypes,
    Recipe,
    as_tuple,
    canonical_dims,
    check_float,
    check_normalized_sizes,
    check_param_shape,
    check_residual_shape,
    check_unused,
    choices,
    float_dtypes,
    is_trailing,
    partial_count,
    promote,
    resolve_dtypes,
)

__all__ = [
    "Dtypes",
    "Recipe",
    "as_tuple",
    "canonical_dims",
    "check_float",
    "check_normalized_sizes",
    "check_param_shape",
    "check_residual_shape",
    "check_unused",
    "choices",
    "float_dtypes",
    "is_trailing",
    "partial_count",
    "promote",
    "resolve_dtypes",
]
