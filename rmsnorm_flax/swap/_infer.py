"""``infer_spec`` for JAX/Flax: a linen module with its variables, an nnx module, or a function."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx as fnnx

from rmsnorm_core import Implementation, RMSNormError, RMSNormSpec, RMSNormTypeError
from rmsnorm_core import infer_spec as core_infer_spec

_SCALE = ("scale", "weight", "gamma")


def _block(normalized_shape: Any, params: Mapping[str, Any]) -> tuple[int, ...]:
    if normalized_shape is not None:
        if isinstance(normalized_shape, int):
            return (normalized_shape,)
        return tuple(int(d) for d in normalized_shape)
    if params:
        return tuple(np.shape(next(iter(params.values()))))
    raise RMSNormTypeError(
        "normalized_shape is required for a function or a module without parameters "
        "(e.g. normalized_shape=4096)"
    )


def _named(tree: Mapping[str, Any], where: str) -> dict[str, str]:
    """``{"scale": key, "bias": key}`` of a norm's own parameter names."""
    keys = set(tree)
    out = {}
    for key in _SCALE:
        if key in keys:
            out["scale"] = key
            break
    if "bias" in keys:
        out["bias"] = "bias"
    extra = keys - set(out.values())
    if extra:
        raise RMSNormError(f"{where} has parameters {sorted(extra)} besides a scale and a bias")
    return out


def _quiet(fn: Callable[[Any], Any]) -> Callable[[np.ndarray], np.ndarray]:
    def apply(x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(fn(jnp.asarray(x)))

    return apply


def implementation(
    module_or_fn: Any, variables: Any = None, normalized_shape: Any = None
) -> Implementation:
    """Core's view of a Flax norm: NumPy in and out, its parameters settable."""
    if isinstance(module_or_fn, fnn.Module):
        if variables is None:
            raise RMSNormTypeError(
                "a linen module needs its variables: infer_spec(module, variables)"
            )
        state = {"variables": jax.tree.map(lambda a: a, dict(variables))}
        params = dict(state["variables"].get("params", {}))
        names = _named(params, type(module_or_fn).__name__)

        def set_params(values: Mapping[str, np.ndarray]) -> None:
            new = dict(state["variables"]["params"])
            new.update({names[k]: jnp.asarray(v) for k, v in values.items()})
            state["variables"] = {**state["variables"], "params": new}

        apply = _quiet(lambda x: module_or_fn.apply(state["variables"], x))
        current = {k: np.asarray(params[v]) for k, v in names.items()}
    elif isinstance(module_or_fn, fnnx.Module):
        attrs = {k: v for k, v in vars(module_or_fn).items() if isinstance(v, fnnx.Param)}
        names = _named(attrs, type(module_or_fn).__name__)

        def set_params(values: Mapping[str, np.ndarray]) -> None:
            for k, v in values.items():
                getattr(module_or_fn, names[k])[...] = jnp.asarray(v)

        apply = _quiet(module_or_fn)
        current = {k: np.asarray(getattr(module_or_fn, v)[...]) for k, v in names.items()}
    elif callable(module_or_fn):
        apply, current = _quiet(module_or_fn), {}

        def set_params(values: Mapping[str, np.ndarray]) -> None:
            if values:
                raise RMSNormError("a plain function has no parameters to set")
    else:
        raise RMSNormTypeError(
            "module_or_fn must be a linen module (with variables), an nnx module or a function, "
            f"got {type(module_or_fn).__name__}"
        )
    return Implementation(apply, _block(normalized_shape, current), current, set_params)


def infer_spec(
    module_or_fn: Any, variables: Any = None, normalized_shape: int | Sequence[int] | None = None
) -> RMSNormSpec:
    """The spec a Flax norm (or any JAX function) computes, measured, then verified.

    See ``rmsnorm_core.infer_spec`` for what is probed and the verification bar
    (the tolerance table in float32, the bit-for-bit share in bfloat16 and float16).

    Args:
        module_or_fn: a linen module (pass ``variables``), an nnx module, or ``f(x) -> y``.
        variables: a linen module's variables (``{"params": {"scale": ...}}``).
        normalized_shape: the block's shape; defaults to the scale's shape.

    Raises:
        rmsnorm_core.RMSNormError: what it found, when no spec reproduces it.
    """
    return core_infer_spec(implementation(module_or_fn, variables, normalized_shape))
