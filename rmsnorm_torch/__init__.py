"""rmsnorm_torch: the PyTorch layer of rmsnorm-bridge. Never imports jax.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.
"""

from ._bridge import (
    layers_from_module,
    layers_from_state_dict,
    load_into_module,
    modules_from_layers,
    state_dict_from_layers,
)
from ._compile import COMPILE_OPTIONS
from ._functional import rms_norm, rms_norm_residual, spec_kwargs
from ._modules import ResidualRMSNorm, RMSNorm
from ._onnx import export_onnx

__all__ = [
    "COMPILE_OPTIONS",
    "RMSNorm",
    "ResidualRMSNorm",
    "export_onnx",
    "layers_from_module",
    "layers_from_state_dict",
    "load_into_module",
    "modules_from_layers",
    "state_dict_from_layers",
    "rms_norm",
    "rms_norm_residual",
    "spec_kwargs",
]
