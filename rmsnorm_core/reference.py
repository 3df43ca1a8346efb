"""The float64 NumPy oracle: forward, residual variant and gradients.

The forward pass computes in float64 and rounds only where the spec rounds
(the cast before the scale, the scale formed in float32, the output cast, and
every elementwise step when ``compute_dtype="input"`` is a half dtype),
bfloat16 through ml_dtypes. Gradients come from the analytic formula in
float64, without rounding: a backend's gradient carries one rounding to its
own dtype, which the tolerance table covers.
"""

from rmsnorm_core.oracle._reference import rms_norm, rms_norm_residual, rms_norm_vjp

__all__ = ["rms_norm", "rms_norm_residual", "rms_norm_vjp"]
