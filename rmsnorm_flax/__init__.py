"""rmsnorm_flax: the JAX/Flax layer of rmsnorm-bridge. Never imports torch.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.
"""

from rmsnorm_flax.functional._fields import flax_norm_spec
from rmsnorm_flax.functional._functional import rms_norm, rms_norm_residual
from rmsnorm_flax.interop._bridge import (
    layers_from_linen,
    layers_from_nnx,
    layers_from_params,
    load_into_linen,
    load_into_nnx,
    params_from_layers,
)
from rmsnorm_flax.interop._infer import infer_spec

__all__ = [
    "flax_norm_spec",
    "infer_spec",
    "layers_from_linen",
    "layers_from_nnx",
    "layers_from_params",
    "load_into_linen",
    "load_into_nnx",
    "params_from_layers",
    "rms_norm",
    "rms_norm_residual",
]
