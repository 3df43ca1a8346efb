"""rmsnorm_core: the framework-neutral RMSNorm spec, reference and tolerances.

Imports NumPy, ml_dtypes and safetensors only; never torch, never jax.
"""

from . import backends, reference, rules, testing
from ._atomic import write_atomic
from ._checkpoint import FORMAT_VERSION, load, save
from ._dtypes import FLOAT_DTYPES, check_float_dtype, dtype_name, numpy_dtype, promote
from ._errors import RMSNormError, RMSNormTypeError, RMSNormUsageError
from ._infer import Implementation, infer_spec
from ._layouts import (
    HF_NORM_KEYS,
    INFERRED,
    layers_from_param_tree,
    layers_from_state_arrays,
    param_tree_from_layers,
    state_arrays_from_layers,
)
from ._names import NAME_MAPS, flax_to_torch, torch_to_flax
from ._neutral import NeutralLayer, check_layer_name, neutral_layer
from ._offsets import with_scale_offset
from ._plan import (
    DtypePlan,
    canonical_axes,
    check_normalized_shape,
    check_param,
    check_params,
    check_residual,
    dtype_plan,
    param_shape,
    partial_count,
    sample_shape,
)
from ._presets import FLOAT32_EPS
from ._rules import Recipe
from ._safetensors import open_regular
from ._spec import SCHEMA_VERSION, RMSNormSpec, preset, presets
from ._tolerance import (
    ROUNDING_AGREEMENT,
    TOLERANCES,
    Comparison,
    Tolerance,
    assert_close,
    compare,
    rounding_agreement,
    tolerance,
)

__version__ = "0.1.0"
"""The version of rmsnorm-bridge."""

__all__ = [
    "FORMAT_VERSION",
    "HF_NORM_KEYS",
    "Implementation",
    "infer_spec",
    "INFERRED",
    "Recipe",
    "backends",
    "check_layer_name",
    "neutral_layer",
    "open_regular",
    "rules",
    "layers_from_param_tree",
    "layers_from_state_arrays",
    "param_tree_from_layers",
    "state_arrays_from_layers",
    "testing",
    "write_atomic",
    "NAME_MAPS",
    "NeutralLayer",
    "flax_to_torch",
    "load",
    "save",
    "torch_to_flax",
    "with_scale_offset",
    "FLOAT32_EPS",
    "FLOAT_DTYPES",
    "ROUNDING_AGREEMENT",
    "SCHEMA_VERSION",
    "TOLERANCES",
    "Comparison",
    "DtypePlan",
    "RMSNormError",
    "RMSNormSpec",
    "RMSNormTypeError",
    "RMSNormUsageError",
    "Tolerance",
    "__version__",
    "assert_close",
    "canonical_axes",
    "check_float_dtype",
    "check_normalized_shape",
    "check_param",
    "check_params",
    "check_residual",
    "compare",
    "dtype_name",
    "dtype_plan",
    "numpy_dtype",
    "param_shape",
    "partial_count",
    "preset",
    "presets",
    "promote",
    "reference",
    "sample_shape",
    "rounding_agreement",
    "tolerance",
]
