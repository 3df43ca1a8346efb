"""The float64 NumPy oracle (public namespace): see :mod:`rmsnorm_core._reference`."""

from ._reference import rms_norm, rms_norm_residual, rms_norm_vjp

__all__ = ["rms_norm", "rms_norm_residual", "rms_norm_vjp"]
