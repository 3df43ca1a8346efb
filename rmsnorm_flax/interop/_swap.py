"""Our kernel in existing Flax code: ``nnx.replace_norms`` and ``linen.intercept_norms``
(their public docstrings say what each does; the fields of a ``flax.linen.RMSNorm``
become a spec through ``flax_norm_spec``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import flax.linen as fnn
from flax import nnx as fnnx

from rmsnorm_core import RMSNormError, RMSNormSpec
from rmsnorm_flax.functional._fields import flax_norm_spec, resolve
from rmsnorm_flax.functional._functional import rms_norm
from rmsnorm_flax.interop._infer import infer_spec


def replace_norms(model: fnnx.Module, ours: type) -> dict[str, RMSNormSpec]:
    """Replace every RMSNorm-like leaf of an nnx ``model`` with ``ours``, in place.

    ``ours`` is ``rmsnorm_flax.nnx.RMSNorm``, passed in by ``nnx.replace_norms``
    so that this module does not import the public module that imports it.

    Returns:
        ``{path: spec}`` of what was replaced (paths joined with ``.``).
    """
    found = []
    for path, node in fnnx.iter_graph(model):
        if not path or isinstance(node, ours) or not isinstance(node, fnnx.Module):
            continue
        if "norm" in type(node).__name__.lower() and isinstance(
            getattr(node, "scale", None), fnnx.Param
        ):
            found.append((path, node))
    replaced: dict[str, RMSNormSpec] = {}
    for path, node in found:
        try:
            spec = infer_spec(node)
        except RMSNormError:
            continue  # not an RMSNorm any spec describes (a LayerNorm, ...)
        scale = node.scale
        features = scale[...].shape[0] if len(spec.axes) == 1 else tuple(scale[...].shape)
        new = ours(features, spec=spec, rngs=fnnx.Rngs(0))
        new.scale = scale  # the same Param object
        if getattr(node, "bias", None) is not None:
            new.bias = node.bias
        parent = model
        for key in path[:-1]:
            parent = parent[key] if isinstance(key, int) else getattr(parent, key)
        if isinstance(path[-1], int):
            parent[path[-1]] = new
        else:
            setattr(parent, path[-1], new)
        replaced[".".join(str(p) for p in path)] = spec
    return replaced


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
        spec, feature_axes = flax_norm_spec(mod)
        layer = resolve(
            epsilon=mod.epsilon, param_dtype=mod.param_dtype, use_scale=mod.use_scale,
            reduction_axes=mod.reduction_axes, feature_axes=mod.feature_axes,
            force_float32_reductions=mod.force_float32_reductions,
            axis_index_groups=mod.axis_index_groups, spec=None,
        )  # fmt: skip
        scale = mod.get_variable("params", "scale") if spec.use_scale else None
        return rms_norm(
            x, layer.spec, layer.expand(scale, x.shape), axis_name=mod.axis_name,
            mask=kwargs.get("mask"), dtype=mod.dtype,
        )  # fmt: skip

    with fnn.intercept_methods(interceptor):
        yield
