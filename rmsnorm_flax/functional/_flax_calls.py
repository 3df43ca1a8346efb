"""flax's RMSNorm for the calls that no spec describes, op for op (Flax 0.12).

``flax.linen.RMSNorm`` and ``flax.nnx.RMSNorm`` accept calls outside what an
``RMSNormSpec`` holds: an ``epsilon`` that is a JAX array or a tracer (a layer
built inside ``jit`` from a traced value) or a number a spec refuses (negative,
NaN, infinite, or below float32's smallest normal but not 0); a ``param_dtype``
no spec holds (complex64: flax's scale is then complex); ``axis_index_groups``
(``lax.pmean`` over groups of devices: flax's own layer runs it under ``pmap``
only, ``vmap`` and ``shard_map`` raise ``NotImplementedError`` in
jax 0.10); integer, boolean or complex inputs,
``force_float32_reductions=False`` (the mean square in the input dtype),
``reduction_axes=()`` or an axis named twice, and a ``dtype`` whose float32
promotion differs from the input's (under ``jax_enable_x64``: statistics in
that dtype, the product in the wider of both). :func:`flax_only` decides, once
per trace from static facts (types, dtypes, rank), whether a call is one of
these; :func:`flax_rms_norm` then computes it as flax's ``_compute_stats`` and
``_normalize`` do, so values and autodiff gradients are flax's bit for bit.
Every other call takes the spec's path (``rms_norm``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
from flax.linen import dtypes as flax_dtypes
from jax import lax

from rmsnorm_core import RMSNormError

#: Input dtypes a spec computes (core's floating dtypes); dtype objects, as a dtype's
#: ``.name`` is built anew at each read (microseconds on an eager call).
_SPEC_DTYPES = frozenset(jnp.dtype(n) for n in ("float16", "bfloat16", "float32", "float64"))

#: float32's smallest normal: the flax preset (float32 compute) refuses an eps in (0, this).
_TINY_F32 = float(jnp.finfo(jnp.float32).tiny)


def _canonicalize_axes(rank: int, axes: Any) -> tuple[int, ...]:
    """flax's ``_canonicalize_axes``: non-negative, each axis once (a set's order)."""
    if not isinstance(axes, Iterable):
        axes = (axes,)
    return tuple({rank + axis if axis < 0 else axis for axis in axes})


def _ints(axes: tuple) -> bool:
    """Whether every axis is an int (a bool is not)."""
    return all(isinstance(a, int) and not isinstance(a, bool) for a in axes)


def _abs_sq(x: jax.Array) -> jax.Array:
    """flax's ``_abs_sq``: ``|x|^2`` elementwise, real for a complex ``x``."""
    if jnp.iscomplexobj(x):
        return lax.square(lax.real(x)) + lax.square(lax.imag(x))
    return lax.square(x)


#: ``param_dtype`` -> :func:`_outside_param_dtype`'s answer, keyed by identity: hashing a
#: jax scalar type (``jnp.bfloat16``) costs about 0.4 us a call, a lookup by ``id`` a tenth
#: of that. Each entry holds its object, so that id is not reused while the entry lives.
_PARAM_DTYPES: dict[int, tuple[Any, str | None]] = {}


def _outside_param_dtype(param_dtype: Any) -> str | None:
    """The name of ``param_dtype`` when it is a dtype no spec holds (complex, integer),
    else None (also for a value that is no dtype: the spec's path names it)."""
    hit = _PARAM_DTYPES.get(id(param_dtype))
    if hit is not None and hit[0] is param_dtype:
        return hit[1]
    try:
        dtype = jnp.dtype(param_dtype)
        outside = None if dtype in _SPEC_DTYPES else dtype.name
    except TypeError:
        outside = None
    if len(_PARAM_DTYPES) < 64:  # a few dtypes in practice; bounded all the same
        _PARAM_DTYPES[id(param_dtype)] = (param_dtype, outside)
    return outside


def flax_only_fields(
    epsilon: Any,
    reduction_axes: Any,
    axis_index_groups: Any = None,
    param_dtype: Any = jnp.float32,
) -> str | None:
    """Why a layer's own fields are outside every spec (an ``epsilon`` that is not a
    Python number, or one the flax preset refuses; ``reduction_axes`` empty or naming
    an axis twice; ``axis_index_groups`` not None; a ``param_dtype`` no spec holds,
    such as complex64), or None."""
    if axis_index_groups is not None:
        return f"axis_index_groups={axis_index_groups!r}"
    if param_dtype is not jnp.float32:  # the default, without a lookup
        outside = _outside_param_dtype(param_dtype)
        if outside is not None:
            return f"param_dtype={outside}"
    plain = type(epsilon) is float or type(epsilon) is int  # the common case, without the ABC
    if not plain and (isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real)):
        # an array, a tracer or a bool flax computes with; anything else (a string) is
        # left to the spec's path, which refuses it naming epsilon
        numeric = isinstance(epsilon, bool) or hasattr(epsilon, "dtype")
        return f"epsilon of type {type(epsilon).__name__}" if numeric else None
    if not (epsilon == 0 or _TINY_F32 <= epsilon < math.inf):  # NaN fails both
        return f"epsilon={epsilon!r}"
    wide = not plain and jnp.issubdtype(getattr(epsilon, "dtype", int), jnp.floating)
    if wide and jnp.dtype(epsilon.dtype).itemsize > 4 and jax.config.read("jax_enable_x64"):
        # a typed scalar (np.float64) is not weak: under x64 flax's statistic is float64
        return f"epsilon of dtype {epsilon.dtype} under jax_enable_x64"
    if type(reduction_axes) is int:
        return None
    axes = tuple(reduction_axes) if isinstance(reduction_axes, Iterable) else (reduction_axes,)
    if not _ints(axes) or isinstance(reduction_axes, str):  # the spec's path names the value
        return None
    if not axes:
        return "reduction_axes=()"
    if len(set(axes)) != len(axes):
        return f"reduction_axes={axes!r} names an axis twice"
    return None


def flax_only(
    x: jax.Array,
    *,
    epsilon: Any,
    reduction_axes: Any,
    dtype: Any,
    force_float32_reductions: bool = True,
    axis_index_groups: Any = None,
    param_dtype: Any = jnp.float32,
) -> bool:
    """Whether flax's call on ``x`` is outside every spec (module docstring); static.
    Out-of-range axes are not: the spec's path refuses them with its message."""
    if not force_float32_reductions:
        return True
    if flax_only_fields(epsilon, reduction_axes, axis_index_groups, param_dtype) is not None:
        return True
    return flax_only_input(x, reduction_axes=reduction_axes, dtype=dtype)


def flax_only_input(x: jax.Array, *, reduction_axes: Any, dtype: Any) -> bool:
    """:func:`flax_only` for a layer whose own fields a spec describes: what ``x``
    brings (its dtype against ``dtype``, its rank against ``reduction_axes``)."""
    if x.dtype not in _SPEC_DTYPES:
        return True
    if dtype is not None:
        ours = jnp.promote_types(x.dtype, jnp.float32)
        if jnp.promote_types(jnp.dtype(dtype), jnp.float32) != ours:
            return True
    if not isinstance(reduction_axes, Iterable) or len(reduction_axes) < 2:
        return False
    if isinstance(reduction_axes, str) or not _ints(tuple(reduction_axes)):
        return False  # the spec's path refuses it, naming the value
    return len(_canonicalize_axes(x.ndim, reduction_axes)) != len(tuple(reduction_axes))


def _check_axes(name: str, axes: Any, rank: int) -> None:
    axes = tuple(axes) if isinstance(axes, Iterable) else (axes,)
    if any(not -rank <= int(a) < rank for a in axes):
        raise RMSNormError(
            f"{name}={axes} is out of range for an input of rank {rank}; each axis must "
            f"satisfy {-rank} <= axis < {rank}"
        )


def feature_shape(x_shape: tuple[int, ...], feature_axes: Any) -> tuple[int, ...]:
    """flax's parameter shape for ``x_shape``: the sizes at ``feature_axes`` in its order."""
    _check_axes("feature_axes", feature_axes, len(x_shape))
    return tuple(x_shape[a] for a in _canonicalize_axes(len(x_shape), feature_axes))


def flax_rms_norm(
    x: Any,
    scale: jax.Array | None,
    *,
    epsilon: Any,
    dtype: Any,
    reduction_axes: Any,
    feature_axes: Any,
    axis_name: Any = None,
    axis_index_groups: Any = None,
    mask: Any = None,
    force_float32_reductions: bool = True,
    param_dtype: Any = None,
) -> jax.Array:
    """flax's ``RMSNorm.__call__`` after its parameter lookup: ``_compute_stats`` with
    ``use_mean=False``, then ``_normalize`` (linen's, which with
    ``force_float32_reductions=False`` casts ``scale`` to ``param_dtype``; nnx passes
    its promoted ``x`` and ``scale`` and the default flag).

    Raises:
        RMSNormError: ``reduction_axes`` or ``feature_axes`` out of range for ``x``.
    """
    x = jnp.asarray(x)
    _check_axes("reduction_axes", reduction_axes, x.ndim)
    _check_axes("feature_axes", feature_axes, x.ndim)
    # _compute_stats
    stats_dtype = jnp.result_type(x) if dtype is None else dtype
    if force_float32_reductions:
        stats_dtype = jnp.promote_types(stats_dtype, jnp.float32)
    h = x.astype(stats_dtype)
    axes = _canonicalize_axes(h.ndim, reduction_axes)
    where = None if mask is None else jnp.asarray(mask, dtype=bool)
    var = _abs_sq(h).mean(axes, where=where)
    if axis_name is not None:
        var = lax.pmean(var, axis_name, axis_index_groups=axis_index_groups)
    mean = jnp.zeros_like(var)
    # _normalize
    shape = [1] * x.ndim
    for a in _canonicalize_axes(x.ndim, feature_axes):
        shape[a] = x.shape[a]
    mean = jnp.expand_dims(mean, axes)
    var = jnp.expand_dims(var, axes)
    y = x - mean
    mul = lax.rsqrt(var + epsilon)
    args = [x]
    if scale is not None:
        scale = scale.reshape(shape)
        if not force_float32_reductions:
            scale = jnp.asarray(scale, param_dtype)
        mul = mul * scale
        args.append(scale)
    y = y * mul
    return jnp.asarray(y, flax_dtypes.canonicalize_dtype(*args, dtype=dtype))


#: A flax layer's fields :func:`flax_rms_norm` reads, named alike in linen and nnx.
_LAYER_FIELDS = ("epsilon", "dtype", "reduction_axes", "feature_axes", "axis_name",
                 "axis_index_groups")  # fmt: skip


def flax_rms_norm_of(
    layer: Any, x: Any, scale: jax.Array | None, mask: Any, **more: Any
) -> jax.Array:
    """:func:`flax_rms_norm` with ``layer``'s own fields (a linen or nnx layer: both name
    them as flax does); ``more``: the fields only one API has (linen's
    ``force_float32_reductions`` and ``param_dtype``)."""
    fields = {name: getattr(layer, name) for name in _LAYER_FIELDS}
    return flax_rms_norm(x, scale, mask=mask, **fields, **more)
