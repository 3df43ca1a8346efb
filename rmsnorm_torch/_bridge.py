"""Neutral layers to and from PyTorch modules and state dicts.

Names: a layer's neutral name is its module path (``model.layers.0.norm``);
``name_map`` (a callable, default identity) rewrites names on the way in or
out, e.g. ``rmsnorm_core.flax_to_torch`` maps ``layers_0.norm`` to
``layers.0.norm``. Parameters: neutral ``scale`` is torch's ``weight``;
``bias`` is ``bias``. Values are copied bit for bit; a layer's
``scale_offset`` is kept (a Gemma layer stays ``1 + w``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Dict, Optional

import ml_dtypes
import numpy as np
import torch
from torch import Tensor, nn

from rmsnorm_core import NAME_MAPS, NeutralLayer, RMSNormError, RMSNormSpec, dtype_name, preset

from ._modules import RMSNorm

NameMap = Callable[[str], str]
#: Hugging Face style norm weights: ``...input_layernorm.weight``, ``model.norm.weight``.
HF_NORM_KEYS = r"^(?P<layer>(.*\.)?[A-Za-z_0-9]*norm[A-Za-z_0-9]*)\.weight$"


def to_numpy(t: Tensor) -> np.ndarray:
    """Exact copy to NumPy (bfloat16 through ml_dtypes)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


def to_tensor(a: np.ndarray) -> Tensor:
    """Exact copy to torch (bfloat16 through ml_dtypes)."""
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a).copy())


def _layer(spec: RMSNormSpec, weight: Optional[Tensor], bias: Optional[Tensor]) -> NeutralLayer:
    p = weight if weight is not None else bias
    if p is not None:
        spec = spec.replace(param_dtype=dtype_name(p.dtype))
    return NeutralLayer(
        spec, None if weight is None else to_numpy(weight), None if bias is None else to_numpy(bias)
    )


def layers_from_module(
    module: nn.Module,
    *,
    preset_for_torch: Optional[str] = None,
    name_map: NameMap = NAME_MAPS["none"],
) -> Dict[str, NeutralLayer]:
    """Every ``rmsnorm_torch.RMSNorm`` in ``module`` (and, given ``preset_for_torch``,
    every ``torch.nn.RMSNorm``, read as that preset with its own eps and shape)."""
    layers: Dict[str, NeutralLayer] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, RMSNorm):
            layers[name_map(name)] = _layer(sub.spec, sub.weight, sub.bias)
        elif isinstance(sub, nn.RMSNorm) and preset_for_torch is not None:
            base = preset(preset_for_torch)
            spec = base.replace(
                axes=tuple(range(-len(sub.normalized_shape), 0)),
                eps=base.eps if sub.eps is None else sub.eps,
                use_scale=sub.elementwise_affine,
                use_bias=False,
            )
            layers[name_map(name)] = _layer(spec, sub.weight, None)
    return layers


def load_into_module(
    module: nn.Module, layers: Mapping[str, NeutralLayer], *, name_map: NameMap = NAME_MAPS["none"]
) -> None:
    """Copy each layer's parameters into the module of the same (mapped) name.

    Raises:
        RMSNormError: a layer has no module of that name, the module is not an
            RMSNorm, or its spec (parameter dtype aside) or shape differs.
    """
    for name, layer in layers.items():
        target = name_map(name)
        try:
            sub = module.get_submodule(target)
        except AttributeError:
            raise RMSNormError(f"layer {name!r}: the module has no submodule {target!r}") from None
        if isinstance(sub, RMSNorm):
            if sub.spec.replace(param_dtype=layer.spec.param_dtype) != layer.spec:
                raise RMSNormError(
                    f"layer {name!r}: module {target!r} computes {sub.spec!r}, the "
                    f"checkpoint {layer.spec!r}"
                )
        elif not isinstance(sub, nn.RMSNorm):
            raise RMSNormError(
                f"layer {name!r}: {target!r} is a {type(sub).__name__}, not an RMSNorm"
            )
        elif layer.spec.scale_offset != 0.0 or layer.spec.use_bias:
            raise RMSNormError(
                f"layer {name!r}: torch.nn.RMSNorm cannot hold a scale_offset or "
                "bias; use rmsnorm_torch.RMSNorm or rmsnorm_core.with_scale_offset"
            )
        _copy(name, sub, "weight", layer.scale)
        _copy(name, sub, "bias", layer.bias)


def _copy(name: str, sub: nn.Module, attr: str, value: Optional[np.ndarray]) -> None:
    param = getattr(sub, attr, None)
    if (param is None) != (value is None):
        raise RMSNormError(f"layer {name!r}: {attr} presence differs between checkpoint and module")
    if param is None:
        return
    if tuple(param.shape) != tuple(value.shape):
        raise RMSNormError(
            f"layer {name!r}: {attr} has shape {tuple(param.shape)} in the module "
            f"and {tuple(value.shape)} in the checkpoint"
        )
    with torch.no_grad():
        param.data = to_tensor(value).to(param.device)


def modules_from_layers(layers: Mapping[str, NeutralLayer]) -> Dict[str, RMSNorm]:
    """A fresh ``rmsnorm_torch.RMSNorm`` for each layer, carrying its parameters."""
    out = {}
    for name, layer in layers.items():
        module = RMSNorm.from_spec(layer.spec, layer.param_shape)
        _copy(name, module, "weight", layer.scale)
        _copy(name, module, "bias", layer.bias)
        out[name] = module
    return out


def state_dict_from_layers(
    layers: Mapping[str, NeutralLayer], *, name_map: NameMap = NAME_MAPS["none"]
) -> Dict[str, Tensor]:
    """``{"<name>.weight": ..., "<name>.bias": ...}`` as torch's modules save them."""
    state: Dict[str, Tensor] = {}
    for name, layer in layers.items():
        for key, value in (("weight", layer.scale), ("bias", layer.bias)):
            if value is not None:
                state[f"{name_map(name)}.{key}"] = to_tensor(value)
    return state


def layers_from_state_dict(
    state: Mapping[str, Tensor],
    spec: RMSNormSpec,
    *,
    pattern: str = HF_NORM_KEYS,
    name_map: NameMap = NAME_MAPS["none"],
) -> Dict[str, NeutralLayer]:
    """Read norm weights out of a plain state dict (e.g. Hugging Face's) as ``spec``.

    Every key matching ``pattern`` (group ``layer`` names the layer) is a
    scale over the trailing ``weight.ndim`` axes; ``<layer>.bias``, if
    present, its bias. ``spec`` supplies the rest (eps, cast order, offset).
    """
    layers: Dict[str, NeutralLayer] = {}
    for key, weight in state.items():
        match = re.match(pattern, key)
        if not match or not isinstance(weight, Tensor):
            continue
        name = match.group("layer")
        bias = state.get(f"{name}.bias")
        layer_spec = spec.replace(
            axes=tuple(range(-weight.dim(), 0)), use_scale=True, use_bias=bias is not None
        )
        layers[name_map(name)] = _layer(layer_spec, weight, bias)
    if not layers:
        raise RMSNormError(
            f"no key of the state dict matches pattern {pattern!r}; pass the "
            "pattern of your norm weights"
        )
    return layers
