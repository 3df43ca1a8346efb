"""Our kernel in existing Flax code: ``nnx.replace_norms`` and ``linen.intercept_norms``
(their public docstrings say what each does; the fields of a ``flax.linen.RMSNorm``
become a spec through ``flax_norm_spec``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import flax.linen as fnn
import jax.numpy as jnp
from flax import nnx as fnnx

from rmsnorm_core import ReplaceReport, RMSNormError, RMSNormSpec, check_probe_size, replace_each
from rmsnorm_flax.functional._fields import flax_norm_spec, resolve
from rmsnorm_flax.functional._flax_calls import flax_only
from rmsnorm_flax.functional._functional import rms_norm
from rmsnorm_flax.swap._infer import infer_spec


def _edges(model: fnnx.Module) -> list[tuple[str, fnnx.Module, str, fnnx.Module]]:
    """``(path, parent, attribute, child)`` for every edge to a submodule: a module shared
    at several paths appears at each; each module's own edges are listed once."""
    out: list[tuple[str, fnnx.Module, str, fnnx.Module]] = []
    expanded: set[int] = set()

    def walk(node: fnnx.Module, prefix: str) -> None:
        if id(node) in expanded:
            return
        expanded.add(id(node))
        for key, child in list(vars(node).items()):
            if isinstance(child, fnnx.Module):
                path = f"{prefix}.{key}" if prefix else str(key)
                out.append((path, node, key, child))
                walk(child, path)

    walk(model, "")
    return out


def _is_candidate(node: fnnx.Module, ours: type) -> bool:
    leaf = not any(isinstance(v, fnnx.Module) for v in vars(node).values())
    return leaf and not isinstance(node, ours) and "norm" in type(node).__name__.lower()


#: The constructor arguments of ``flax.nnx.RMSNorm`` (Flax 0.12) besides ``num_features``.
_NNX_FIELDS = (
    "epsilon", "dtype", "param_dtype", "use_scale", "reduction_axes", "feature_axes",
    "axis_name", "axis_index_groups", "use_fast_variance", "promote_dtype",
)  # fmt: skip


def _from_fields(node: fnnx.Module, ours: type) -> tuple[Any, RMSNormSpec]:
    """Ours for a ``flax.nnx.RMSNorm`` built from its own fields (no probe: they say
    everything, ``dtype``, ``feature_axes`` and ``promote_dtype`` included), with the
    same scale ``Param``."""
    flax_norm_spec(node)  # refuses a layer no spec describes (it would not be ours to swap)
    new = ours(node.num_features, rngs=fnnx.Rngs(0), **{f: getattr(node, f) for f in _NNX_FIELDS})
    if node.scale is not None:
        new.scale = node.scale  # the same Param object
    return new, new.layer.spec


def _replacement(node: fnnx.Module, ours: type) -> tuple[Any, RMSNormSpec] | str:
    """Ours for ``node`` with its spec (the same Param objects), or why it stays."""
    state = dict(fnnx.to_flat_state(fnnx.state(node)))
    if type(node) is fnnx.RMSNorm:  # its array epsilon is a field ours keeps as flax does
        state.pop(("epsilon",), None)
    kept = {("scale",), ("bias",)}
    other = sorted(".".join(map(str, k)) for k in state if k not in kept)
    if other or not all(isinstance(v, fnnx.Param) for v in state.values()):
        return f"it holds state {other or sorted(map(str, state))} that ours would not keep"
    if type(node) is fnnx.RMSNorm:
        try:
            return _from_fields(node, ours)
        except RMSNormError as err:  # fields no spec describes (an array epsilon, ...)
            return str(err)
    scale = getattr(node, "scale", None)
    try:
        if scale is not None:
            check_probe_size("scale", scale[...].size, tuple(scale[...].shape))
        features = getattr(node, "num_features", None)
        spec = infer_spec(fnnx.clone(node), normalized_shape=None if scale else features)
    except RMSNormError as err:  # not an RMSNorm any spec describes (a LayerNorm, ...)
        return str(err)
    if scale is not None:
        features = scale[...].shape[0] if len(spec.axes) == 1 else tuple(scale[...].shape)
    new = ours(features, spec=spec, rngs=fnnx.Rngs(0))
    if scale is not None:
        new.scale = scale  # the same Param object
    if getattr(node, "bias", None) is not None:
        new.bias = node.bias
    return new, spec


def replace_norms(model: fnnx.Module, ours: type) -> ReplaceReport:
    """Replace every RMSNorm-like leaf of an nnx ``model`` with ``ours``, in place.

    ``ours`` is ``rmsnorm_flax.nnx.RMSNorm``, passed in by ``nnx.replace_norms``
    so that this module does not import the public module that imports it. The
    contract is ``nnx.replace_norms``'.
    """

    def put_at(parent: fnnx.Module, key: str) -> Any:
        if isinstance(parent, fnnx.List):
            return lambda new: parent.__setitem__(int(key), new)
        return lambda new: setattr(parent, key, new)

    candidates = [
        (path, node, put_at(parent, key))
        for path, parent, key, node in _edges(model)
        if _is_candidate(node, ours)
    ]
    return replace_each(candidates, lambda node: _replacement(node, ours))


@contextlib.contextmanager
def intercept_norms() -> Iterator[None]:
    """Route every ``flax.linen.RMSNorm`` application through our kernel (module docstring)."""

    def interceptor(next_fun: Any, args: Any, kwargs: Any, context: Any) -> Any:
        mod = context.module
        if (
            context.method_name != "__call__"
            or type(mod) is not fnn.RMSNorm
            or mod.is_initializing()
        ):
            return next_fun(*args, **kwargs)
        (x,) = args
        x = jnp.asarray(x)
        names = ("epsilon", "reduction_axes", "dtype", "axis_index_groups", "param_dtype")
        fields = {f: getattr(mod, f) for f in names}
        if flax_only(x, force_float32_reductions=mod.force_float32_reductions, **fields):
            return next_fun(*args, **kwargs)  # a call no spec describes: flax's own code
        spec, feature_axes = flax_norm_spec(mod)
        layer = resolve(
            epsilon=mod.epsilon, param_dtype=mod.param_dtype, use_scale=mod.use_scale,
            reduction_axes=mod.reduction_axes, feature_axes=mod.feature_axes,
            force_float32_reductions=mod.force_float32_reductions,
            axis_index_groups=mod.axis_index_groups, spec=None,
        )  # fmt: skip
        scale = mod.get_variable("params", "scale") if spec.use_scale else None
        return rms_norm(
            x, layer.spec, layer.param(scale, x.shape), axis_name=mod.axis_name,
            mask=kwargs.get("mask"), dtype=mod.dtype, feature_axes=layer.feature_axes,
        )  # fmt: skip

    with fnn.intercept_methods(interceptor):
        yield
