"""Core's float64 oracle against a naive NumPy RMSNorm (float64 too)."""

from __future__ import annotations

import numpy as np

from rmsnorm_core import RMSNormSpec, reference

from ._harness import register


@register("core.reference.forward[f32 1024x1024]", baseline="numpy naive float64")
def _reference_forward():
    x = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    spec = RMSNormSpec()

    def ours():
        return reference.rms_norm(x, spec)

    def naive():
        h = x.astype(np.float64)
        return (h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + 1e-6)).astype(np.float32)

    return ours, naive
