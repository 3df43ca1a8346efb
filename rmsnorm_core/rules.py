"""The spec's rules as backends call them, written once.

Core's own helpers and the PyTorch layer (inside scripted modules too) call
these same functions, so no rule exists in two copies: they are written in the
subset of Python that TorchScript compiles (``List``/``Optional``
annotations, dtypes by name).

A spec compiles once into a :class:`Recipe` of plain values
(``RMSNormSpec.recipe``); a call resolves the recipe against the input's rank
and dtypes with :func:`canonical_dims`, :func:`partial_count` and
:func:`resolve_dtypes`, and checks its arguments with the ``check_*``
functions, whose messages name the parameter, the value and what is accepted.
"""

from rmsnorm_core.spec._rules import (
    DtypePlan,
    Recipe,
    as_tuple,
    block_count,
    canonical_dims,
    check_float,
    check_normalized_sizes,
    check_param_shape,
    check_residual_shape,
    check_unused,
    float_dtypes,
    is_trailing,
    partial_count,
    promote_pair,
    resolve_dtypes,
)
from rmsnorm_core.spec._validation import choices  # noqa: E402 (not TorchScript: spec-only)

__all__ = [
    "DtypePlan",
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
    "block_count",
    "partial_count",
    "promote_pair",
    "resolve_dtypes",
]
