"""rmsnorm_flax: the JAX/Flax layer of rmsnorm-bridge. Never imports torch.

The formula and precision rules are in ``rmsnorm_core.RMSNormSpec``.
"""

from ._functional import rms_norm, rms_norm_residual

__all__ = ["rms_norm", "rms_norm_residual"]
