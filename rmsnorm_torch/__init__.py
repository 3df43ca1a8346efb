"""rmsnorm_torch: the PyTorch layer of rmsnorm-bridge. Never imports jax.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.
"""

from rmsnorm_torch.export._compile import COMPILE_OPTIONS
from rmsnorm_torch.export._onnx import export_onnx
from rmsnorm_torch.interop._bridge import (
    layers_from_module,
    layers_from_state_dict,
    load_into_module,
    modules_from_layers,
    state_dict_from_layers,
    torch_norm_spec,
)
from rmsnorm_torch.interop._infer import infer_spec
from rmsnorm_torch.interop._replace import replace_norms
from rmsnorm_torch.kernels._kernel_choice import KERNELS, use_kernel
from rmsnorm_torch.nn._functional import rms_norm, rms_norm_residual
from rmsnorm_torch.nn._modules import MUTABLE_FIELDS, RMSNorm
from rmsnorm_torch.nn._residual_module import ResidualRMSNorm

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
