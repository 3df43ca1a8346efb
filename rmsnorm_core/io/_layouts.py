"""Norm weights in the two plain layouts people have, as NumPy: state dicts and param trees.

- a state dict (PyTorch, Hugging Face): flat ``{"model.norm.weight": array}``;
  the norms are the keys matching a pattern (:data:`HF_NORM_KEYS`);
- a param tree (Flax): nested ``{"layers_0": {"norm": {"scale": array}}}``;
  the norms are the subtrees holding just ``scale`` (and ``bias``).

Both hold weights but no spec; the caller's spec supplies it. Fields the
file decides (``axes`` from the weight's rank, ``use_bias`` from a bias
tensor, ``param_dtype`` from the dtype) are read from the file when listed in
``infer`` (the default: all four of :data:`INFERRED`); a field not listed is
the caller's explicit choice and must agree with the file, or the read is
refused naming the layer and the field: an override is honoured or refused,
never dropped. The framework packages wrap these for their own tensors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

from rmsnorm_core.io._neutral import NeutralLayer, neutral_layer
from rmsnorm_core.spec._dtypes import dtype_name
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError
from rmsnorm_core.spec._spec import RMSNormSpec

NameMap = Callable[[str], str]
HF_NORM_KEYS = r"^(?P<layer>(.*\.)?[A-Za-z_0-9]*norm[A-Za-z_0-9]*)\.weight$"
"""Hugging Face style norm weights: ``...input_layernorm.weight``,
``model.norm.weight``."""
INFERRED = frozenset({"axes", "use_scale", "use_bias", "param_dtype"})
"""Spec fields a file can decide."""


def _identity(name: str) -> str:
    return name


def layer_from_arrays(
    name: str,
    spec: RMSNormSpec,
    scale: np.ndarray,
    bias: np.ndarray | None,
    infer: Collection[str] = INFERRED,
) -> NeutralLayer:
    """One layer from a file's arrays, honouring or refusing ``spec`` (module docstring)."""
    fields: dict[str, Any] = {
        "axes": tuple(range(-scale.ndim, 0)),
        "use_scale": True,
        "use_bias": bias is not None,
        "param_dtype": dtype_name(scale.dtype),
    }
    where = {
        "axes": f"its weight has rank {scale.ndim}",
        "use_scale": "it holds a weight",
        "use_bias": "it holds a bias" if bias is not None else "it holds no bias",
        "param_dtype": f"its weight is {dtype_name(scale.dtype)}",
    }
    spec_fields = {"axes": spec.axes, "use_scale": spec.use_scale, "use_bias": spec.use_bias}
    spec_fields["param_dtype"] = spec.param_dtype
    for field in sorted(INFERRED - set(infer)):
        wanted = spec_fields[field]
        agrees = len(wanted) == scale.ndim if field == "axes" else wanted == fields[field]
        if not agrees:
            raise RMSNormUsageError(
                f"layer {name!r}: the spec sets {field}={wanted!r} but {where[field]} in the file"
            )
        fields[field] = wanted
    if bias is not None and dtype_name(bias.dtype) != fields["param_dtype"]:
        raise RMSNormError(
            f"layer {name!r}: its bias is {dtype_name(bias.dtype)} but its weight "
            f"{dtype_name(scale.dtype)}; a layer has one parameter dtype"
        )
    return neutral_layer(name, spec.replace(**fields), scale, bias)


def _unique(pairs: list[tuple[str, str, NeutralLayer]]) -> dict[str, NeutralLayer]:
    out: dict[str, NeutralLayer] = {}
    source: dict[str, str] = {}
    for original, mapped, layer in pairs:
        if mapped in out:
            raise RMSNormError(
                f"layers {source[mapped]!r} and {original!r} both map to the name {mapped!r}; "
                "rename one or use another name mapping"
            )
        out[mapped], source[mapped] = layer, original
    return out


def layers_from_state_arrays(
    state: Mapping[str, Any],
    spec: RMSNormSpec,
    *,
    pattern: str = HF_NORM_KEYS,
    name_map: NameMap = _identity,
    infer: Collection[str] = INFERRED,
) -> dict[str, NeutralLayer]:
    """The norms of a flat state dict of arrays: every key matching ``pattern``
    (its group ``layer`` names the layer) is a weight; ``<layer>.bias`` its bias.

    Raises:
        RMSNormError: the pattern is not a regex with a ``layer`` group, no key
            matches, two layers map to one name, or the spec disagrees with a
            file-decided field not in ``infer``.
    """
    regex = compile_pattern(pattern)
    pairs = []
    for key in state:  # values are read for matching keys only (a view may convert lazily)
        match = regex.match(key) if isinstance(key, str) else None
        if not match:
            continue
        weight = state[key]
        if not hasattr(weight, "dtype"):
            continue
        name = match.group("layer")
        bias = state.get(f"{name}.bias")
        scale = np.asarray(weight)
        layer = layer_from_arrays(
            name, spec, scale, None if bias is None else np.asarray(bias), infer
        )
        pairs.append((name, name_map(name), layer))
    if not pairs:
        raise RMSNormError(
            f"no key of the state dict matches pattern {pattern!r}; pass the pattern of your "
            "norm weights"
        )
    return _unique(pairs)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled, or a one-line error if it is no regex or lacks ``(?P<layer>...)``."""
    try:
        regex = re.compile(pattern)
    except (re.error, TypeError, RecursionError, OverflowError) as err:
        raise RMSNormUsageError(
            f"--pattern {pattern!r} is not a regular expression: {err}"
        ) from None
    if "layer" not in regex.groupindex:
        raise RMSNormUsageError(
            f"--pattern {pattern!r} has no group named 'layer'; write it as "
            "(?P<layer>...)\\.weight, the group naming the layer"
        )
    return regex


def state_arrays_from_layers(
    layers: Mapping[str, NeutralLayer], *, name_map: NameMap = _identity
) -> dict[str, np.ndarray]:
    """``{"<name>.weight": scale, "<name>.bias": bias}``, as torch's modules save them."""
    state: dict[str, np.ndarray] = {}
    for mapped, layer in _unique([(n, name_map(n), la) for n, la in layers.items()]).items():
        for key, value in (("weight", layer.scale), ("bias", layer.bias)):
            if value is not None:
                state[f"{mapped}.{key}"] = value
    return state


def layers_from_param_tree(
    params: Mapping[str, Any],
    spec: RMSNormSpec,
    *,
    name_map: NameMap = _identity,
    infer: Collection[str] = INFERRED,
) -> dict[str, NeutralLayer]:
    """The norms of a nested param tree (under ``"params"`` if present): every
    subtree holding just ``scale`` (and optionally ``bias``) is one layer."""
    pairs: list[tuple[str, str, NeutralLayer]] = []

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, Mapping):
            return
        keys = set(node)
        if keys and keys <= {"scale", "bias"} and "scale" in keys:
            name = ".".join(path)
            bias = None if "bias" not in node else np.asarray(node["bias"])
            layer = layer_from_arrays(name, spec, np.asarray(node["scale"]), bias, infer)
            pairs.append((name, name_map(name), layer))
            return
        for key, child in node.items():
            walk(child, (*path, str(key)))

    walk(params.get("params", params) if isinstance(params, Mapping) else params, ())
    if not pairs:
        raise RMSNormError(
            "no RMSNorm parameters (a subtree of just 'scale' and optional 'bias') were "
            "found in the params tree"
        )
    return _unique(pairs)


def param_tree_from_layers(
    layers: Mapping[str, NeutralLayer], *, name_map: NameMap = _identity
) -> dict[str, Any]:
    """A nested ``{"layers_0": {"norm": {"scale": ...}}}`` tree of the layers' arrays."""
    tree: dict[str, Any] = {}
    for mapped, layer in _unique([(n, name_map(n), la) for n, la in layers.items()]).items():
        node = tree
        for key in mapped.split("."):
            node = node.setdefault(key, {})
            if not isinstance(node, dict) or set(node) & {"scale", "bias"}:
                raise RMSNormError(
                    f"layer {mapped!r} lies inside another layer's parameters; a param tree "
                    "cannot hold both"
                )
        if node:
            raise RMSNormError(
                f"layer {mapped!r} holds other layers' parameters; a param tree cannot hold both"
            )
        for field in ("scale", "bias"):
            value = getattr(layer, field)
            if value is not None:
                node[field] = value
    return tree
