"""rmsnorm_torch: the PyTorch layer of rmsnorm-bridge. Never imports jax.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.
"""

from ._compile import COMPILE_OPTIONS
from ._functional import rms_norm, rms_norm_residual, spec_kwargs
from ._modules import ResidualRMSNorm, RMSNorm
from ._onnx import export_onnx

__all__ = [
    "COMPILE_OPTIONS",
    "RMSNorm",
    "ResidualRMSNorm",
    "export_onnx",
    "rms_norm",
    "rms_norm_residual",
    "spec_kwargs",
]
