"""rmsnorm_torch: the PyTorch layer of rmsnorm-bridge. Never imports jax.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.

Names load on first use (``rmsnorm_torch.RMSNorm``, ``from rmsnorm_torch import
rms_norm``): importing the package, as ``rmsnorm_core``'s backend registry does
for every command, does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmsnorm_core._lazy import lazy_exports  # the light module: backends would load the registry

if TYPE_CHECKING:  # what the names are, for type checkers and the reference docs
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

_BRIDGE = "rmsnorm_torch.interop._bridge"
_WHERE = {
    "COMPILE_OPTIONS": "rmsnorm_torch.export._compile",
    "export_onnx": "rmsnorm_torch.export._onnx",
    "layers_from_module": _BRIDGE,
    "layers_from_state_dict": _BRIDGE,
    "load_into_module": _BRIDGE,
    "modules_from_layers": _BRIDGE,
    "state_dict_from_layers": _BRIDGE,
    "torch_norm_spec": _BRIDGE,
    "infer_spec": "rmsnorm_torch.interop._infer",
    "replace_norms": "rmsnorm_torch.interop._replace",
    "KERNELS": "rmsnorm_torch.kernels._kernel_choice",
    "use_kernel": "rmsnorm_torch.kernels._kernel_choice",
    "rms_norm": "rmsnorm_torch.nn._functional",
    "rms_norm_residual": "rmsnorm_torch.nn._functional",
    "MUTABLE_FIELDS": "rmsnorm_torch.nn._modules",
    "RMSNorm": "rmsnorm_torch.nn._modules",
    "ResidualRMSNorm": "rmsnorm_torch.nn._residual_module",
}
# rmsnorm_torch.functional after `import rmsnorm_torch`, as torch.nn.functional is
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, ("functional",))

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
