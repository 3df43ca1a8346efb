"""Neutral layers to and from Flax: linen variables, nnx modules, plain param trees.

Names join the module path with ``.`` (``layers_0.norm``); ``name_map``
rewrites them (``rmsnorm_core.torch_to_flax`` maps ``layers.0.norm`` back).
Values are copied bit for bit; ``scale_offset`` is kept. Loading compares
the whole spec of each layer with the spec of the norm it goes into (for
flax's own ``RMSNorm``, the spec it computes: see :func:`flax_norm_spec`) and
refuses any difference, naming the fields; nothing is written unless every
layer passes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx as fnnx

from rmsnorm_core import (
    INFERRED,
    NAME_MAPS,
    NeutralLayer,
    RMSNormError,
    RMSNormSpec,
    dtype_name,
    layers_from_param_tree,
    neutral_layer,
    param_tree_from_layers,
)
from rmsnorm_flax import linen, nnx
from rmsnorm_flax.functional._fields import flax_norm_spec

NameMap = Callable[[str], str]
_IDENTITY = NAME_MAPS["none"]
Found = dict[str, tuple[RMSNormSpec, tuple]]  # name -> (spec, feature axes)


def _with_params(spec: RMSNormSpec, scale: Any, bias: Any) -> RMSNormSpec:
    present = [p for p in (scale, bias) if p is not None]
    return spec.replace(param_dtype=dtype_name(present[0].dtype)) if present else spec


def _layer(
    name: str, spec: RMSNormSpec, feature_axes: tuple, scale: Any, bias: Any
) -> NeutralLayer:
    if tuple(feature_axes) != tuple(spec.axes):
        raise RMSNormError(
            f"layer {name!r}: its scale covers feature_axes={feature_axes}, not all "
            f"normalized axes {spec.axes}; a neutral layer holds one scale per normalized element"
        )
    arrays = [None if p is None else np.asarray(p) for p in (scale, bias)]
    return neutral_layer(name, _with_params(spec, *arrays), *arrays)


def _linen_norms(
    module: fnn.Module, variables: Mapping, args: tuple, kwargs: dict, flax_too: bool
) -> Found:
    """Every norm of a linen model, found by tracing it once with ``jax.eval_shape``."""
    found: Found = {}

    def interceptor(next_fun, call_args, call_kwargs, context):  # noqa: ANN001, ANN202
        mod = context.module
        name = ".".join(mod.path)
        if context.method_name == "__call__" and name not in found:
            if isinstance(mod, linen.RMSNorm) and mod.spec is not None:
                layer = _named(name, mod._layer)
                found[name] = (layer.spec, tuple(layer.feature_axes))
            elif isinstance(mod, linen.RMSNorm) or (isinstance(mod, fnn.RMSNorm) and flax_too):
                # ours without spec= holds flax's fields: the same spec, the same refusals
                found[name] = _named(name, lambda: flax_norm_spec(mod))
        return next_fun(*call_args, **call_kwargs)

    with fnn.intercept_methods(interceptor):
        jax.eval_shape(lambda v: module.apply(v, *args, **kwargs), variables)
    return found


def _named(name: str, spec_of: Callable[[], Any]) -> Any:
    """``spec_of()``, with a refusal's message naming the layer (its module path)."""
    try:
        return spec_of()
    except RMSNormError as err:
        raise type(err)(f"layer {name!r}: {err}") from err


def _node(params: Mapping, name: str) -> Any:
    node: Any = params
    for key in name.split(".") if name else ():
        if not isinstance(node, Mapping) or key not in node:
            raise RMSNormError(f"the params have no module {name!r}")
        node = node[key]
    return node


def layers_from_linen(
    module: fnn.Module,
    variables: Mapping,
    *args: Any,
    preset_for_flax: str | None = None,
    name_map: NameMap = _IDENTITY,
    **kwargs: Any,
) -> dict[str, NeutralLayer]:
    """Every RMSNorm of ours in a linen model (and flax's own, given ``preset_for_flax``,
    which must be ``"flax"``: flax's norm computes that preset, measured, not assumed).

    Linen creates submodules when it runs, so the model is traced once with
    ``jax.eval_shape`` on sample ``args``/``kwargs`` (no computation) to find
    them; their parameters are read from ``variables``.

    Args:
        module: the linen model.
        variables: its variables (``{"params": ...}``).
        *args: a sample call's positional arguments (shapes matter, not values).
        preset_for_flax: ``"flax"`` to include ``flax.linen.RMSNorm`` layers;
            None (default) for ours only.
        name_map: maps each module path (``layers_0.norm``) to the layer name.
        **kwargs: the sample call's keyword arguments.

    Returns:
        ``{layer name: NeutralLayer}``, the spec and parameters of each norm.
    """
    _check_preset(preset_for_flax)
    found = _linen_norms(module, variables, args, kwargs, preset_for_flax is not None)
    out: dict[str, NeutralLayer] = {}
    for name, (spec, feats) in found.items():
        node = _node(variables["params"], name)
        if name_map(name) in out:
            raise RMSNormError(f"two norms map to the layer name {name_map(name)!r}")
        out[name_map(name)] = _layer(name, spec, feats, node.get("scale"), node.get("bias"))
    return out


def _check_preset(preset_for_flax: str | None) -> None:
    if preset_for_flax not in (None, "flax"):
        raise RMSNormError(
            f"preset_for_flax={preset_for_flax!r} is not accepted: flax's RMSNorm computes the "
            "'flax' preset (with its own epsilon, axes and dtype); pass 'flax' or None"
        )


def load_into_linen(
    module: fnn.Module,
    variables: Mapping,
    layers: Mapping[str, NeutralLayer],
    *args: Any,
    name_map: NameMap = _IDENTITY,
    **kwargs: Any,
) -> dict[str, Any]:
    """Return ``variables`` with each layer's parameters in the norm of the same (mapped)
    name; the model is traced on ``args``/``kwargs`` to find its norms and their specs.

    Args:
        module: the linen model.
        variables: its variables; they are not modified (a new tree is returned).
        layers: ``{layer name: NeutralLayer}``, e.g. from ``rmsnorm_core.load``.
        *args: a sample call's positional arguments.
        name_map: maps each layer name to the model's module path.
        **kwargs: the sample call's keyword arguments.

    Raises:
        RMSNormError: a layer has no norm of that name, or a spec, a parameter's
            presence or shape differs.
    """
    found = _linen_norms(module, variables, args, kwargs, True)
    out = jax.tree.map(lambda a: a, dict(variables))
    params = out["params"] = _thaw(out["params"])
    updates = []
    for name, layer in layers.items():
        target = name_map(name)
        if target not in found:
            raise RMSNormError(f"layer {name!r}: the model has no RMSNorm {target!r}")
        node = _node(params, target)
        spec = _with_params(found[target][0], node.get("scale"), node.get("bias"))
        spec.check_same(
            layer.spec, what=f"layer {name!r} into {target!r}", mine="model", theirs="checkpoint"
        )
        for field in ("scale", "bias"):
            _check_field(name, field, node.get(field), getattr(layer, field))
        updates.append((node, layer))
    for node, layer in updates:
        for field in ("scale", "bias"):
            if getattr(layer, field) is not None:
                node[field] = jnp.asarray(getattr(layer, field))
    return out


def _thaw(tree: Any) -> Any:
    return {k: _thaw(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def _check_field(name: str, field: str, current: Any, value: np.ndarray | None) -> None:
    if (current is None) != (value is None):
        raise RMSNormError(f"layer {name!r}: {field} presence differs between checkpoint and model")
    if value is not None and tuple(current.shape) != tuple(value.shape):
        raise RMSNormError(
            f"layer {name!r}: {field} has shape {tuple(current.shape)} in the model and "
            f"{tuple(value.shape)} in the checkpoint"
        )


def _nnx_norms(model: fnnx.Module, flax_too: bool) -> dict[str, tuple[Any, RMSNormSpec, tuple]]:
    out = {}
    for path, node in fnnx.iter_graph(model):
        name = ".".join(str(p) for p in path)
        scale = getattr(node, "scale", None)
        scale = None if scale is None else scale[...]
        if isinstance(node, nnx.RMSNorm):
            if node.layer is None:  # flax's fields, which no spec describes: flax's refusal
                _named(name, lambda node=node: flax_norm_spec(node))
            bias = None if node.bias is None else node.bias[...]
            spec = _with_params(node.layer.spec, scale, bias)
            out[name] = (node, spec, tuple(node.layer.feature_axes))
        elif isinstance(node, fnnx.RMSNorm) and flax_too:
            spec, feats = _named(name, lambda node=node: flax_norm_spec(node))
            out[name] = (node, _with_params(spec, scale, None), feats)
    return out


def layers_from_nnx(
    model: fnnx.Module, *, preset_for_flax: str | None = None, name_map: NameMap = _IDENTITY
) -> dict[str, NeutralLayer]:
    """Every RMSNorm of ours in an nnx model (and flax's own, given ``preset_for_flax="flax"``).

    Args:
        model: the nnx model.
        preset_for_flax: ``"flax"`` to include ``flax.nnx.RMSNorm`` layers.
        name_map: maps each module path to the layer name.
    """
    _check_preset(preset_for_flax)
    out = {}
    for name, (node, spec, feats) in _nnx_norms(model, preset_for_flax is not None).items():
        scale = None if node.scale is None else node.scale[...]
        bias = getattr(node, "bias", None)
        bias = None if bias is None else bias[...]
        if name_map(name) in out:
            raise RMSNormError(f"two norms map to the layer name {name_map(name)!r}")
        out[name_map(name)] = _layer(name, spec, feats, scale, bias)
    return out


def load_into_nnx(
    model: fnnx.Module, layers: Mapping[str, NeutralLayer], *, name_map: NameMap = _IDENTITY
) -> None:
    """Set each layer's parameters on the nnx RMSNorm of the same (mapped) name, in place.

    Every layer's whole spec is compared with its target's (for flax's own
    ``RMSNorm``, the spec it computes) and any difference is refused, naming
    the fields; nothing is written unless every layer passes.

    Args:
        model: the nnx model, changed in place.
        layers: ``{layer name: NeutralLayer}``.
        name_map: maps each layer name to the model's module path.
    """
    norms = _nnx_norms(model, True)
    updates = []
    for name, layer in layers.items():
        target = name_map(name)
        if target not in norms:
            raise RMSNormError(f"layer {name!r}: the model has no RMSNorm {target!r}")
        node, spec, _ = norms[target]
        spec.check_same(
            layer.spec, what=f"layer {name!r} into {target!r}", mine="model", theirs="checkpoint"
        )
        for field in ("scale", "bias"):
            param = getattr(node, field, None)
            _check_field(name, field, None if param is None else param[...], getattr(layer, field))
        updates.append((node, layer))
    for node, layer in updates:
        for field in ("scale", "bias"):
            if getattr(layer, field) is not None:
                getattr(node, field)[...] = jnp.asarray(getattr(layer, field))


def params_from_layers(
    layers: Mapping[str, NeutralLayer], *, name_map: NameMap = _IDENTITY
) -> dict[str, Any]:
    """A nested params dict ``{"layers_0": {"norm": {"scale": ...}}}`` of jnp arrays."""
    return jax.tree.map(jnp.asarray, param_tree_from_layers(layers, name_map=name_map))


def layers_from_params(
    params: Mapping,
    spec: RMSNormSpec,
    *,
    name_map: NameMap = _IDENTITY,
    infer: Collection[str] = INFERRED,
) -> dict[str, NeutralLayer]:
    """Read norms from a plain params tree: each subtree holding just ``scale`` (and
    optionally ``bias``) is one layer; see ``rmsnorm_core.layers_from_param_tree``."""
    return layers_from_param_tree(params, spec, name_map=name_map, infer=infer)
