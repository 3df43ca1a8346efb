"""Neutral layers to and from PyTorch modules and state dicts.

Names: a layer's neutral name is its module path (``model.layers.0.norm``);
``name_map`` (a callable, default identity) rewrites names on the way in or
out, e.g. ``rmsnorm_core.flax_to_torch`` maps ``layers_0.norm`` to
``layers.0.norm``. Parameters: neutral ``scale`` is torch's ``weight``;
``bias`` is ``bias``. Values are copied bit for bit; a layer's
``scale_offset`` is kept (a Gemma layer stays ``1 + w``). Loading compares
the whole spec of each layer with the spec of the module it goes into (for
``torch.nn.RMSNorm``, the spec it computes: see :func:`torch_norm_spec`) and
refuses any difference, naming the fields.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Dict, Optional

import ml_dtypes
import numpy as np
import torch
from torch import Tensor, nn

from rmsnorm_core import (
    FLOAT32_EPS,
    HF_NORM_KEYS,
    INFERRED,
    NAME_MAPS,
    NeutralLayer,
    RMSNormError,
    RMSNormSpec,
    dtype_name,
    layers_from_state_arrays,
    preset,
    state_arrays_from_layers,
)
from rmsnorm_torch.nn._given import eps_is_bool, eps_value
from rmsnorm_torch.nn._modules import RMSNorm

NameMap = Callable[[str], str]


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


def torch_norm_spec(module: nn.RMSNorm, base: str = "torch") -> RMSNormSpec:
    """The spec a ``torch.nn.RMSNorm`` computes: the ``torch`` preset (or ``base``) with
    the module's eps (None: float32's epsilon), shape, affinity and parameter dtype, each
    read as torch's forward reads it (a tensor or NumPy eps as the float its op takes; a
    bool eps is left for the spec to refuse, naming it: a spec holds no bool)."""
    spec = preset(base)
    eps = module.eps if eps_is_bool(module.eps) else eps_value(module.eps)
    return spec.replace(
        axes=tuple(range(-len(module.normalized_shape), 0)),
        eps=FLOAT32_EPS if eps is None else eps,
        use_scale=module.weight is not None,
        use_bias=False,
        param_dtype=dtype_name(module.weight.dtype)
        if module.weight is not None
        else spec.param_dtype,
    )


def _layer(spec: RMSNormSpec, weight: Optional[Tensor], bias: Optional[Tensor]) -> NeutralLayer:
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
    every ``torch.nn.RMSNorm``, read as that preset with its own eps and shape).

    Args:
        module: the model.
        preset_for_torch: include ``torch.nn.RMSNorm`` layers, read as this
            preset (``"torch"``: what they compute) with each module's eps,
            shape and dtype; None (default) for ours only.
        name_map: maps each module path (``layers.0.norm``) to the layer name.

    Returns:
        ``{layer name: NeutralLayer}``, the spec and parameters of each norm.
    """
    layers: Dict[str, NeutralLayer] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, RMSNorm):
            layer = _layer(sub.spec, sub.weight, sub.bias)
        elif isinstance(sub, nn.RMSNorm) and preset_for_torch is not None:
            layer = _layer(torch_norm_spec(sub, preset_for_torch), sub.weight, None)
        else:
            continue
        if name_map(name) in layers:
            raise RMSNormError(f"two modules map to the layer name {name_map(name)!r}")
        layers[name_map(name)] = layer
    return layers


def load_into_module(
    module: nn.Module, layers: Mapping[str, NeutralLayer], *, name_map: NameMap = NAME_MAPS["none"]
) -> None:
    """Copy each layer's parameters into the module of the same (mapped) name.

    Every layer is checked before any parameter is written, so a refused load
    changes nothing.

    Args:
        module: the model, changed in place.
        layers: ``{layer name: NeutralLayer}``, e.g. from ``rmsnorm_core.load``.
        name_map: maps each layer name to the model's module path.

    Raises:
        RMSNormError: a layer has no module of that name, the module is not an
            RMSNorm, or its spec differs from the layer's in any field
            (``torch.nn.RMSNorm`` computes :func:`torch_norm_spec`).
    """
    targets = []
    for name, layer in layers.items():
        target = name_map(name)
        try:
            sub = module.get_submodule(target)
        except AttributeError:
            raise RMSNormError(f"layer {name!r}: the module has no submodule {target!r}") from None
        if isinstance(sub, RMSNorm):
            spec = sub.spec
        elif isinstance(sub, nn.RMSNorm):
            spec = torch_norm_spec(sub)
        else:
            raise RMSNormError(
                f"layer {name!r}: {target!r} is a {type(sub).__name__}, not an RMSNorm"
            )
        spec.check_same(
            layer.spec, what=f"layer {name!r} into {target!r}", mine="module", theirs="checkpoint"
        )
        _check_shape(name, sub, "weight", layer.scale)
        _check_shape(name, sub, "bias", layer.bias)
        targets.append((sub, layer))
    for sub, layer in targets:
        _copy(sub, "weight", layer.scale)
        _copy(sub, "bias", layer.bias)


def _check_shape(name: str, sub: nn.Module, attr: str, value: Optional[np.ndarray]) -> None:
    param = getattr(sub, attr, None)
    if (param is None) != (value is None):
        raise RMSNormError(f"layer {name!r}: {attr} presence differs between checkpoint and module")
    if param is not None and tuple(param.shape) != tuple(value.shape):
        raise RMSNormError(
            f"layer {name!r}: {attr} has shape {tuple(param.shape)} in the module "
            f"and {tuple(value.shape)} in the checkpoint"
        )


def _copy(sub: nn.Module, attr: str, value: Optional[np.ndarray]) -> None:
    param = getattr(sub, attr, None)
    if param is not None and value is not None:
        with torch.no_grad():
            param.copy_(to_tensor(value))


def modules_from_layers(layers: Mapping[str, NeutralLayer]) -> Dict[str, RMSNorm]:
    """A fresh ``rmsnorm_torch.RMSNorm`` for each layer, carrying its parameters."""
    out = {}
    for name, layer in layers.items():
        module = RMSNorm.from_spec(layer.spec, layer.param_shape)
        _check_shape(name, module, "weight", layer.scale)
        _copy(module, "weight", layer.scale)
        _copy(module, "bias", layer.bias)
        out[name] = module
    return out


def state_dict_from_layers(
    layers: Mapping[str, NeutralLayer], *, name_map: NameMap = NAME_MAPS["none"]
) -> Dict[str, Tensor]:
    """``{"<name>.weight": ..., "<name>.bias": ...}`` as torch's modules save them."""
    arrays = state_arrays_from_layers(layers, name_map=name_map)
    return {key: to_tensor(value) for key, value in arrays.items()}


def layers_from_state_dict(
    state: Mapping[str, Tensor],
    spec: RMSNormSpec,
    *,
    pattern: str = HF_NORM_KEYS,
    name_map: NameMap = NAME_MAPS["none"],
    infer: Collection[str] = INFERRED,
) -> Dict[str, NeutralLayer]:
    """Read norm weights out of a plain state dict (e.g. Hugging Face's) as ``spec``.

    Every key matching ``pattern`` (group ``layer`` names the layer) is a
    scale; ``<layer>.bias``, if present, its bias. The file decides the
    fields in ``infer`` (axes from the weight's rank, bias, parameter dtype);
    the others are ``spec``'s and must agree with the file
    (``rmsnorm_core.layers_from_state_arrays``).

    Args:
        state: the state dict (a norm's tensors are read as NumPy, bit for bit).
        spec: the convention the norms follow, e.g. ``RMSNormSpec.preset("llama")``.
        pattern: a regex over keys; its group ``layer`` names the layer.
            Default :data:`rmsnorm_core.HF_NORM_KEYS`.
        name_map: maps each layer's key prefix to the layer name.
        infer: the fields the file decides, a subset of
            :data:`rmsnorm_core.INFERRED` (default: all of them).
    """
    return layers_from_state_arrays(
        _NumpyView(state), spec, pattern=pattern, name_map=name_map, infer=infer
    )


class _NumpyView(Mapping):
    """A state dict read as NumPy, converting only the tensors looked up."""

    def __init__(self, state: Mapping[str, Tensor]) -> None:
        self._state = state

    def __getitem__(self, key: str) -> object:
        value = self._state[key]
        if not isinstance(value, Tensor):
            return value
        if value.is_nested or value.layout != torch.strided or value.is_quantized:
            kind = "nested" if value.is_nested else "quantized" if value.is_quantized else None
            raise RMSNormError(
                f"state dict key {key!r} holds a {kind or str(value.layout)} tensor; "
                "accepted: a dense (torch.strided) tensor"
            )
        return to_numpy(value)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)
