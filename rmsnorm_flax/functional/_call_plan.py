"""A call's plan: core's checks and dtype plan for one spec, shape and dtypes, memoized,
and the axes its parameters span."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rmsnorm_core import (
    RMSNormError,
    RMSNormShapeError,
    RMSNormSpec,
    RMSNormTypeError,
    canonical_axes,
    check_params,
    dtype_plan,
)
from rmsnorm_core.rules import block_count
from rmsnorm_flax.functional._kernel import Plan


def feature_dims(feature_axes: int | Sequence[int], rank: int) -> tuple[int, ...]:
    """flax's ``_canonicalize_axes`` for ``feature_axes``: non-negative, sorted, a repeated
    axis counted once; any axes of ``x``, normalized or not.

    Raises:
        RMSNormError: an axis is out of range for ``rank``, or ``rank`` is 0.
    """
    axes = (feature_axes,) if isinstance(feature_axes, int) else tuple(feature_axes)
    if rank < 1:
        canonical_axes(axes, rank)  # core's refusal of a scalar input
    bad = [a for a in axes if not -rank <= int(a) < rank]
    if bad:
        raise RMSNormError(
            f"feature_axes={axes} is out of range for an input of rank {rank}; each axis "
            f"must satisfy {-rank} <= axis < {rank}"
        )
    return tuple(sorted({int(a) % rank for a in axes}))


def call_plan(
    x: jax.Array,
    spec: RMSNormSpec,
    scale: Any,
    bias: Any,
    axis_name: Any,
    dtype: Any | None = None,
    feature_axes: int | Sequence[int] | None = None,
) -> Plan:
    """The call's plan, resolved once per spec, shapes and dtypes (a pure function of
    hashable values, memoized: an eager nnx call then costs a dictionary lookup);
    ``dtype``: flax's output dtype, or None for the spec's; ``feature_axes``: the axes
    the parameters span, or None for the spec's."""
    out_dtype = None if dtype is None else jnp.dtype(dtype).name
    if not isinstance(spec, RMSNormSpec):
        raise RMSNormTypeError(f"spec must be an RMSNormSpec, got {type(spec).__name__}")
    if feature_axes is not None and not isinstance(feature_axes, int):
        feature_axes = tuple(feature_axes)
    params = (_describe(scale), _describe(bias))
    args = (spec, tuple(x.shape), x.dtype.name, params, axis_name, out_dtype, feature_axes)
    try:
        return _resolved(*args)
    except TypeError:  # an unhashable axis_name: resolve without the memo
        return _resolved.__wrapped__(*args)


@functools.lru_cache(maxsize=1024)
def _resolved(
    spec: RMSNormSpec,
    shape: tuple,
    in_dtype: str,
    params: tuple,
    axis_name: Any,
    out_dtype: str | None,
    feature_axes: int | tuple | None,
) -> Plan:
    dims = canonical_axes(spec.axes, len(shape))
    feats = dims if feature_axes is None else feature_dims(feature_axes, len(shape))
    arrays = [None if p is None else _Described(*p) for p in params]
    expected = tuple(shape[d] for d in feats)
    for name, p in zip(("scale", "bias"), arrays, strict=True):
        if feats != dims and p is not None and tuple(p.shape) != expected:
            raise RMSNormShapeError(
                f"{name} has shape {tuple(p.shape)}; expected {expected}, the sizes of "
                f"feature_axes={feature_axes} in increasing axis order"
            )
    param_dtype = check_params(spec, shape, *arrays, expected_shape=expected)
    n = math.prod(shape[d] for d in dims)
    if axis_name is not None and spec.partial < 1.0:
        raise RMSNormError(
            f"partial={spec.partial} with axis_name={axis_name!r} is not supported: the first "
            "k elements of a block sharded across devices are not local; use partial=1.0 or "
            "gather the normalized axis"
        )
    plan = dtype_plan(spec, in_dtype, param_dtype)
    if out_dtype is not None:  # flax's dtype: the output rounded once, to it
        plan = plan._replace(output=out_dtype)
    view = tuple(shape[d] if d in feats else 1 for d in range(len(shape)))
    k = block_count(spec.partial, n)  # -1: the whole block (core's one convention)
    return Plan(
        spec=spec,
        dims=dims,
        rank=len(shape),
        n=n,
        k=k,
        plan=plan,
        param_view=view,
        param_dims=feats,
        axis_name=axis_name,
    )


def _describe(p: Any) -> tuple | None:
    if p is None:
        return None
    # jnp.result_type reads the dtype of arrays and of scalars/lists alike
    a = p if isinstance(p, jax.Array) else jnp.asarray(p)
    return (a.shape, a.dtype.name)


class _Described(NamedTuple):
    """A parameter as core's checks read it: its shape and dtype (no array kept)."""

    shape: tuple
    dtype: str
