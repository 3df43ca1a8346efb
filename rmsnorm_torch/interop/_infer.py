"""``infer_spec`` for PyTorch: any module or function, measured by core's prober."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from rmsnorm_core import Implementation, RMSNormError, RMSNormSpec, RMSNormTypeError
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


def implementation(
    module_or_fn: Union[nn.Module, Callable[[Tensor], Tensor]],
    normalized_shape: Optional[Union[int, Sequence[int]]] = None,
) -> Implementation:
    """Core's view of a torch norm: NumPy in and out, its parameters settable."""
    params = _params(module_or_fn) if isinstance(module_or_fn, nn.Module) else {}
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

    def apply(x: np.ndarray) -> np.ndarray:
        # probes feed float16 and bfloat16 against float32 weights on purpose;
        # the implementation's warnings about that are not the caller's
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return to_numpy(module_or_fn(to_tensor(x).to(device)))

    def set_params(values: Mapping[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name, value in values.items():
                params[name].copy_(to_tensor(value))

    current = {name: to_numpy(p) for name, p in params.items()}
    return Implementation(apply, block, current, set_params)


def infer_spec(
    module_or_fn: Union[nn.Module, Callable[[Tensor], Tensor]],
    normalized_shape: Optional[Union[int, Sequence[int]]] = None,
) -> RMSNormSpec:
    """The spec a norm module or function computes, measured, then verified.

    Probes (never the class name) and verifies as ``rmsnorm_core.infer_spec``
    describes: the result reproduces the implementation in float32 under the
    tolerance table and bit for bit (the table's share) in bfloat16 and float16.
    Its parameters are set to probe values and restored afterwards.

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
