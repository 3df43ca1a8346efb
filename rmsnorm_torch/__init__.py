"""rmsnorm_torch: the PyTorch layer of rmsnorm-bridge. Never imports jax.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.
"""

from ._bridge import (
    layers_from_module,
    layers_from_state_dict,
    load_into_module,
    modules_from_layers,
    state_dict_from_layers,
    torch_norm_spec,
)
from ._compile import COMPILE_OPTIONS
from ._functional import rms_norm, rms_norm_residual
from ._infer import infer_spec
from ._kernel_choice import KERNELS, use_kernel
from ._modules import MUTABLE_FIELDS, ResidualRMSNorm, RMSNorm
from ._onnx import export_onnx
from ._replace import replace_norms

__all__ = [
    "COMPILE_OPTIONS",
    "KERNELS",
    "MUTABLE_FIELDS",
    "RMSNorm",
    "ResidualRMSNorm",
    "export_onnx",
    "infer_spec",
    "replace_norms",
    "layers_from_module",
    "layers_from_state_dict",
    "load_into_module",
    "modules_from_layers",
    "rms_norm",
    "rms_norm_residual",
    "state_dict_from_layers",
    "torch_norm_spec",
    "use_kernel",
]
