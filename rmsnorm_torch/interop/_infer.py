"""``infer_spec`` for PyTorch: any module or function, measured by core's prober."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from rmsnorm_core import (
    Implementation,
    RMSNormError,
    RMSNormSpec,
    RMSNormTypeError,
    check_probe_size,
)
from rmsnorm_core import infer_spec as core_infer_spec
from rmsnorm_torch.interop._bridge import to_numpy, to_tensor

#: Parameter names read as the scale, in order of preference; "bias" is the bias.
SCALE_NAMES = ("weight", "scale", "gamma", "g")


def _params(module: nn.Module) -> Dict[str, nn.Parameter]:
    """``{"scale": p, "bias": p}`` of a norm module's own parameters."""
    own = dict(module.named_parameters(recurse=False))
    found: Dict[str, nn.Parameter] = {}
    for name in SCALE_NAMES:
        if name in own:
            found["scale"] = own.pop(name)
            break
    if "bias" in own:
        found["bias"] = own.pop("bias")
    if own:
        raise RMSNormError(
            f"{type(module).__name__} has parameters {sorted(own)} besides a scale and a bias; "
            "an RMSNorm has at most those two"
        )
    return found


_HOOKS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
)


def probe_copy(module: nn.Module) -> nn.Module:
    """A copy to probe: the original's parameters, buffers and hooks are never touched
    (a BatchNorm in train mode keeps its running stats), and its hooks never see a
    probe. A module on the meta device is materialized on the CPU, its parameters
    ones and its buffers zeros (the probes set the parameters they use)."""
    hooks = {name: getattr(module, name) for name in _HOOKS}
    try:  # copy without the hooks, so that a hook's closure is never deep-copied
        for name in _HOOKS:
            object.__setattr__(module, name, type(hooks[name])())
        twin = copy.deepcopy(module)
    finally:
        for name, value in hooks.items():
            object.__setattr__(module, name, value)
    if any(t.is_meta for t in (*twin.parameters(), *twin.buffers())):
        twin = twin.to_empty(device="cpu")
        with torch.no_grad():  # values for the first probes, before they set their own
            for p in twin.parameters():
                p.fill_(1)
            for b in twin.buffers():
                b.zero_()
    return twin


def check_probe_sizes(params: Mapping[str, Tensor]) -> None:
    """Refuse a scale too large to be a norm's before any probe runs (core's bound)."""
    for name, p in params.items():
        check_probe_size(name, p.numel(), tuple(p.shape))


def implementation(
    module_or_fn: Union[nn.Module, Callable[[Tensor], Tensor]],
    normalized_shape: Optional[Union[int, Sequence[int]]] = None,
) -> Implementation:
    """Core's view of a torch norm: NumPy in and out, its parameters settable.

    A module is probed through :func:`probe_copy`, never itself; a function is
    called as it is."""
    params: Dict[str, nn.Parameter] = {}
    if isinstance(module_or_fn, nn.Module):
        check_probe_sizes(_params(module_or_fn))
        module_or_fn = probe_copy(module_or_fn)
        params = _params(module_or_fn)
        if normalized_shape is None and not params:
            normalized_shape = getattr(module_or_fn, "normalized_shape", None)
    if normalized_shape is not None:
        block: Tuple[int, ...] = (
            (int(normalized_shape),)
            if isinstance(normalized_shape, int)
            else tuple(int(d) for d in normalized_shape)
        )
    elif params:
        block = tuple(next(iter(params.values())).shape)
    else:
        raise RMSNormTypeError(
            "normalized_shape is required for a function or a module without parameters "
            "(e.g. normalized_shape=4096)"
        )
    device = next((p.device for p in params.values()), torch.device("cpu"))
    probed = module_or_fn

    def apply(x: np.ndarray) -> np.ndarray:
        # probes feed float16 and bfloat16 against float32 weights on purpose;
        # the implementation's warnings about that are not the caller's
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return to_numpy(probed(to_tensor(x).to(device)))

    def set_params(values: Mapping[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name, value in values.items():
                params[name].copy_(to_tensor(value))

    def recast(dtype: str) -> Implementation:  # a copy with its parameters in ``dtype``
        return implementation(copy.deepcopy(probed).to(getattr(torch, dtype)), normalized_shape)

    current = {name: to_numpy(p) for name, p in params.items()}
    is_module = isinstance(probed, nn.Module)
    return Implementation(apply, block, current, set_params, recast if is_module else None)


def infer_spec(
    module_or_fn: Union[nn.Module, Callable[[Tensor], Tensor]],
    normalized_shape: Optional[Union[int, Sequence[int]]] = None,
) -> RMSNormSpec:
    """The spec a norm module or function computes, measured, then verified.

    Probes (never the class name) and verifies as ``rmsnorm_core.infer_spec``
    describes: the result reproduces the implementation in float32 under the
    tolerance table and bit for bit (the table's share) in bfloat16 and float16.
    A module is probed through a copy (hooks left out; a meta-device module
    materialized on the CPU): the module's parameters, buffers and hooks never
    see a probe. A scale of more than ``rmsnorm_core.PROBE_LIMIT`` elements is refused
    before any probe. ``normalized_shape`` defaults to the scale's shape, or
    the module's ``normalized_shape`` (an affine-free ``torch.nn.RMSNorm``).

    Args:
        module_or_fn: ``torch.nn.RMSNorm``, a Hugging Face norm, ours, or any
            ``f(x) -> y``.
        normalized_shape: the block's shape; defaults to the scale's shape.

    Raises:
        rmsnorm_core.RMSNormError: what it found, when no spec reproduces it.
    """
    if not (isinstance(module_or_fn, nn.Module) or callable(module_or_fn)):
        raise RMSNormTypeError(
            f"module_or_fn must be a torch module or a function, got {type(module_or_fn).__name__}"
        )
    return core_infer_spec(implementation(module_or_fn, normalized_shape))
