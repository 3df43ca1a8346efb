"""Explicit conversion between scale parameterizations (``g = offset + scale``)."""

from __future__ import annotations

import numpy as np

from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.spec._dtypes import numpy_dtype
from rmsnorm_core.spec._errors import RMSNormError


def with_scale_offset(layer: NeutralLayer, scale_offset: float) -> NeutralLayer:
    """Return ``layer`` re-parameterized to ``scale_offset``, the gain unchanged.

    ``new_scale = old_scale + old_offset - new_offset``, computed in float32
    (float64 for float64 parameters) and rounded once to the parameter dtype.
    A Gemma layer (offset 1, zero-centered ``w``) becomes a plain one with
    ``w + 1``, and back; in half precision that rounding is the only change.

    Raises:
        RMSNormError: the layer has no scale.
    """
    spec = layer.spec
    if layer.scale is None:
        raise RMSNormError("with_scale_offset() needs a layer with a scale (use_scale=True)")
    wide = np.float64 if spec.param_dtype == "float64" else np.float32
    shifted = layer.scale.astype(wide) + wide(spec.scale_offset) - wide(scale_offset)
    scale = shifted.astype(numpy_dtype(spec.param_dtype))
    return NeutralLayer(spec.replace(scale_offset=float(scale_offset)), scale, layer.bias)
