"""rmsnorm_core: the framework-neutral RMSNorm spec, reference and tolerances.

Imports NumPy and safetensors only (ml_dtypes on the first bfloat16 array); never
torch, never jax. The tools
beside the library (spec inference, the parity kit in :mod:`testing`, the backend
registry in :mod:`backends`) load on first use, so ``import rmsnorm_core`` loads
the spec, the reference and the file formats only.
"""

from typing import TYPE_CHECKING

from rmsnorm_core._lazy import lazy_exports
from rmsnorm_core.io._atomic import write_atomic
from rmsnorm_core.io._checkpoint import FORMAT_VERSION, load, save
from rmsnorm_core.io._digest import array_digest, check_digests
from rmsnorm_core.io._layouts import (
    HF_NORM_KEYS,
    INFERRED,
    layers_from_param_tree,
    layers_from_state_arrays,
    param_tree_from_layers,
    state_arrays_from_layers,
)
from rmsnorm_core.io._names import NAME_MAPS, flax_to_torch, torch_to_flax
from rmsnorm_core.io._neutral import NeutralLayer, check_layer_name, neutral_layer
from rmsnorm_core.io._offsets import with_scale_offset
from rmsnorm_core.io._safetensors import open_regular, read_regular
from rmsnorm_core.oracle._tolerance import (
    ROUNDING_AGREEMENT,
    TOLERANCES,
    Comparison,
    Tolerance,
    assert_close,
    compare,
    rounding_agreement,
    tolerance,
)
from rmsnorm_core.spec._dtypes import (
    FLOAT_DTYPES,
    check_float_dtype,
    dtype_name,
    numpy_dtype,
    promote,
)
from rmsnorm_core.spec._errors import (
    RMSNormDeviceError,
    RMSNormDtypeError,
    RMSNormError,
    RMSNormShapeError,
    RMSNormTypeError,
    RMSNormUsageError,
    RMSNormWarning,
)
from rmsnorm_core.spec._json import loads_strict
from rmsnorm_core.spec._plan import (
    DtypePlan,
    canonical_axes,
    check_normalized_shape,
    check_param,
    check_params,
    check_residual,
    dtype_plan,
    param_shape,
    sample_shape,
)
from rmsnorm_core.spec._presets import FLOAT32_EPS, FLOAT64_EPS
from rmsnorm_core.spec._rules import Recipe, partial_count
from rmsnorm_core.spec._spec import SCHEMA_VERSION, RMSNormSpec, preset, presets

from . import reference, rules

if TYPE_CHECKING:  # what the lazy names are, for type checkers and the reference docs
    from rmsnorm_core.infer._infer import Implementation, infer_spec
    from rmsnorm_core.infer._report import (
        PROBE_LIMIT,
        ReplaceReport,
        check_probe_size,
        replace_each,
    )

_INFER = "rmsnorm_core.infer._infer"
_REPORT = "rmsnorm_core.infer._report"
_WHERE = {
    "Implementation": _INFER,
    "infer_spec": _INFER,
    "PROBE_LIMIT": _REPORT,
    "ReplaceReport": _REPORT,
    "check_probe_size": _REPORT,
    "replace_each": _REPORT,
}
__getattr__, __dir__ = lazy_exports(__name__, _WHERE, ("backends", "testing"))

__version__ = "0.1.0"
"""The version of rmsnorm-bridge."""

__all__ = [
    "FORMAT_VERSION",
    "HF_NORM_KEYS",
    "Implementation",
    "infer_spec",
    "PROBE_LIMIT",
    "ReplaceReport",
    "replace_each",
    "check_probe_size",
    "INFERRED",
    "Recipe",
    "backends",
    "check_layer_name",
    "neutral_layer",
    "open_regular",
    "read_regular",
    "rules",
    "layers_from_param_tree",
    "layers_from_state_arrays",
    "param_tree_from_layers",
    "state_arrays_from_layers",
    "testing",
    "write_atomic",
    "array_digest",
    "check_digests",
    "loads_strict",
    "NAME_MAPS",
    "NeutralLayer",
    "flax_to_torch",
    "load",
    "save",
    "torch_to_flax",
    "with_scale_offset",
    "FLOAT32_EPS",
    "FLOAT64_EPS",
    "FLOAT_DTYPES",
    "ROUNDING_AGREEMENT",
    "SCHEMA_VERSION",
    "TOLERANCES",
    "Comparison",
    "DtypePlan",
    "RMSNormDeviceError",
    "RMSNormDtypeError",
    "RMSNormError",
    "RMSNormSpec",
    "RMSNormShapeError",
    "RMSNormTypeError",
    "RMSNormUsageError",
    "RMSNormWarning",
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
