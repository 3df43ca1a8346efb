"""rmsnorm_flax: the JAX/Flax layer of rmsnorm-bridge. Never imports torch.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.

Names load on first use (``rmsnorm_flax.rms_norm``, ``from rmsnorm_flax import
linen``): importing the package, as ``rmsnorm_core``'s backend registry does
for every command, imports neither jax nor flax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rmsnorm_core._lazy import lazy_exports  # the light module: backends would load the registry

if TYPE_CHECKING:  # what the names are, for type checkers and the reference docs
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
    from rmsnorm_flax.swap._infer import infer_spec

_WHERE = {
    "flax_norm_spec": "rmsnorm_flax.functional._fields",
    "rms_norm": "rmsnorm_flax.functional._functional",
    "rms_norm_residual": "rmsnorm_flax.functional._functional",
    "layers_from_linen": "rmsnorm_flax.interop._bridge",
    "layers_from_nnx": "rmsnorm_flax.interop._bridge",
    "layers_from_params": "rmsnorm_flax.interop._bridge",
    "load_into_linen": "rmsnorm_flax.interop._bridge",
    "load_into_nnx": "rmsnorm_flax.interop._bridge",
    "params_from_layers": "rmsnorm_flax.interop._bridge",
    "infer_spec": "rmsnorm_flax.swap._infer",
}
_SUBMODULES = ("linen", "nnx")
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, _SUBMODULES)

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
