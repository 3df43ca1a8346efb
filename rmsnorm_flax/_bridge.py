"""Neutral layers to and from Flax: linen variables, nnx modules, plain param trees.

Names join the module path with ``.`` (``layers_0.norm``); ``name_map``
rewrites them (``rmsnorm_core.torch_to_flax`` maps ``layers.0.norm`` back).
Values are copied bit for bit; ``scale_offset`` is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx as fnnx

from rmsnorm_core import NAME_MAPS, NeutralLayer, RMSNormError, RMSNormSpec, dtype_name, preset

from . import linen, nnx

NameMap = Callable[[str], str]
_IDENTITY = NAME_MAPS["none"]


def _layer(
    name: str, spec: RMSNormSpec, feature_axes: tuple, scale: Any, bias: Any
) -> NeutralLayer:
    if tuple(feature_axes) != tuple(spec.axes):
        raise RMSNormError(
            f"layer {name!r}: its scale covers feature_axes={feature_axes}, not "
            f"all normalized axes {spec.axes}; a neutral layer holds one scale "
            "per normalized element"
        )
    arrays = [None if p is None else np.asarray(p) for p in (scale, bias)]
    present = [a for a in arrays if a is not None]
    if present:
        spec = spec.replace(param_dtype=dtype_name(present[0].dtype))
    return NeutralLayer(spec, *arrays)


def _flax_spec(module: Any, preset_name: str) -> tuple[RMSNormSpec, tuple]:
    base = preset(preset_name)
    axes = module.reduction_axes
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    feats = module.feature_axes
    feats = (feats,) if isinstance(feats, int) else tuple(feats)
    return base.replace(axes=axes, eps=module.epsilon, use_scale=module.use_scale), feats


def layers_from_linen(
    module: fnn.Module,
    variables: Mapping,
    *args: Any,
    preset_for_flax: str | None = None,
    name_map: NameMap = _IDENTITY,
    **kwargs: Any,
) -> dict[str, NeutralLayer]:
    """Every RMSNorm of ours in a linen model (and flax's own, given ``preset_for_flax``).

    Linen creates submodules when it runs, so the model is traced once with
    ``jax.eval_shape`` on sample ``args``/``kwargs`` (no computation) to find
    them; their parameters are read from ``variables``.
    """
    found: dict[tuple, tuple[RMSNormSpec, tuple]] = {}

    def interceptor(next_fun, call_args, call_kwargs, context):
        mod = context.module
        if context.method_name == "__call__" and mod.path not in found:
            if isinstance(mod, linen.RMSNorm):
                layer = mod._layer()
                found[mod.path] = (layer.spec, tuple(layer.feature_axes))
            elif isinstance(mod, fnn.RMSNorm) and preset_for_flax is not None:
                found[mod.path] = _flax_spec(mod, preset_for_flax)
        return next_fun(*call_args, **call_kwargs)

    with fnn.intercept_methods(interceptor):
        jax.eval_shape(lambda v: module.apply(v, *args, **kwargs), variables)
    params = variables["params"]
    out = {}
    for path, (spec, feats) in found.items():
        node = params
        for key in path:
            node = node[key]
        name = ".".join(path)
        out[name_map(name)] = _layer(name, spec, feats, node.get("scale"), node.get("bias"))
    return out


def params_from_layers(
    layers: Mapping[str, NeutralLayer], *, name_map: NameMap = _IDENTITY
) -> dict[str, Any]:
    """A nested params dict ``{"layers_0": {"norm": {"scale": ...}}}`` of jnp arrays."""
    tree: dict[str, Any] = {}
    for name, layer in layers.items():
        node = tree
        for key in name_map(name).split("."):
            node = node.setdefault(key, {})
        for field in ("scale", "bias"):
            value = getattr(layer, field)
            if value is not None:
                node[field] = jnp.asarray(value)
    return tree


def load_into_linen(
    variables: Mapping, layers: Mapping[str, NeutralLayer], *, name_map: NameMap = _IDENTITY
) -> dict[str, Any]:
    """Return ``variables`` with each layer's parameters replaced (shapes must match)."""
    out = jax.tree.map(lambda a: a, dict(variables))
    params = out["params"] = _thaw(out["params"])
    for name, layer in layers.items():
        node = params
        for key in name_map(name).split("."):
            if not isinstance(node, dict) or key not in node:
                raise RMSNormError(f"layer {name!r}: the params have no module {name_map(name)!r}")
            node = node[key]
        for field in ("scale", "bias"):
            _set(name, node, field, getattr(layer, field))
    return out


def _thaw(tree: Any) -> Any:
    return {k: _thaw(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def _set(name: str, node: dict, field: str, value: np.ndarray | None) -> None:
    if (node.get(field) is None) != (value is None):
        raise RMSNormError(f"layer {name!r}: {field} presence differs between checkpoint and model")
    if value is None:
        return
    if tuple(node[field].shape) != tuple(value.shape):
        raise RMSNormError(
            f"layer {name!r}: {field} has shape {tuple(node[field].shape)} in the "
            f"model and {tuple(value.shape)} in the checkpoint"
        )
    node[field] = jnp.asarray(value)


def _nnx_modules(model: fnnx.Module):
    for path, node in fnnx.iter_graph(model):
        if isinstance(node, (nnx.RMSNorm, fnnx.RMSNorm)):
            yield ".".join(str(p) for p in path), node


def layers_from_nnx(
    model: fnnx.Module, *, preset_for_flax: str | None = None, name_map: NameMap = _IDENTITY
) -> dict[str, NeutralLayer]:
    """Every RMSNorm of ours in an nnx model (and flax's own, given ``preset_for_flax``)."""
    out = {}
    for name, node in _nnx_modules(model):
        scale = None if node.scale is None else node.scale[...]
        if isinstance(node, nnx.RMSNorm):
            bias = None if node.bias is None else node.bias[...]
            out[name_map(name)] = _layer(
                name, node.layer.spec, node.layer.feature_axes, scale, bias
            )
        elif preset_for_flax is not None:
            spec, feats = _flax_spec(node, preset_for_flax)
            out[name_map(name)] = _layer(name, spec, feats, scale, None)
    return out


def load_into_nnx(
    model: fnnx.Module, layers: Mapping[str, NeutralLayer], *, name_map: NameMap = _IDENTITY
) -> None:
    """Set each layer's parameters on the nnx RMSNorm of the same (mapped) name, in place."""
    nodes = dict(_nnx_modules(model))
    for name, layer in layers.items():
        node = nodes.get(name_map(name))
        if node is None:
            raise RMSNormError(f"layer {name!r}: the model has no RMSNorm {name_map(name)!r}")
        for field in ("scale", "bias"):
            param = getattr(node, field, None)
            value = getattr(layer, field)
            if (param is None) != (value is None):
                raise RMSNormError(f"layer {name!r}: {field} presence differs")
            if param is not None:
                if tuple(param[...].shape) != tuple(value.shape):
                    raise RMSNormError(
                        f"layer {name!r}: {field} shape {tuple(param[...].shape)} "
                        f"!= checkpoint {tuple(value.shape)}"
                    )
                param[...] = jnp.asarray(value)


def layers_from_params(
    params: Mapping, spec: RMSNormSpec, *, name_map: NameMap = _IDENTITY
) -> dict[str, NeutralLayer]:
    """Read norms from a plain params tree: each subtree holding just ``scale`` (and
    optionally ``bias``) arrays is one layer of ``spec`` over its trailing axes."""
    out: dict[str, NeutralLayer] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, Mapping):
            return
        keys = set(node)
        if keys and keys <= {"scale", "bias"} and "scale" in keys:
            scale = np.asarray(node["scale"])
            bias = None if "bias" not in node else np.asarray(node["bias"])
            layer_spec = spec.replace(
                axes=tuple(range(-scale.ndim, 0)), use_scale=True, use_bias=bias is not None
            )
            name = ".".join(path)
            out[name_map(name)] = _layer(name, layer_spec, layer_spec.axes, scale, bias)
            return
        for key, child in node.items():
            walk(child, (*path, str(key)))

    walk(params.get("params", params) if isinstance(params, Mapping) else params, ())
    if not out:
        raise RMSNormError(
            "no RMSNorm parameters (a subtree of just 'scale' and optional "
            "'bias') were found in the params tree"
        )
    return out
