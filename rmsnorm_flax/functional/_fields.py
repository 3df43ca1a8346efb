"""What the linen and nnx modules share: flax's fields -> a spec, and the scale layout.

One copy for both APIs (flax's own linen and nnx normalizations drifted apart;
this file exists so ours do not).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError, dtype_name
from rmsnorm_flax.functional._call_plan import feature_dims
from rmsnorm_flax.functional._flax_calls import flax_only_fields

#: flax.linen.RMSNorm / flax.nnx.RMSNorm defaults (Flax 0.12).
FLAX_DEFAULTS = {
    "epsilon": 1e-6,
    "param_dtype": "float32",
    "use_scale": True,
    "reduction_axes": -1,
    "feature_axes": -1,
    "force_float32_reductions": True,
}


def _axes(value: int | Sequence[int]) -> tuple[int, ...]:
    return (value,) if isinstance(value, int) else tuple(value)


@dataclasses.dataclass(frozen=True)
class Layer:
    """A resolved layer: the spec, and the axes flax keeps the scale over (any axes
    of ``x``, normalized or not, as flax's ``feature_axes``)."""

    spec: RMSNormSpec
    feature_axes: tuple[int, ...]

    def feature_shape(self, x_shape: Sequence[int]) -> tuple[int, ...]:
        """flax's parameter shape: the feature dims, in increasing axis order."""
        return tuple(x_shape[d] for d in feature_dims(self.feature_axes, len(x_shape)))

    def param(self, p: jax.Array | None, x_shape: Sequence[int]) -> jax.Array | None:
        """A parameter in the feature shape :func:`rms_norm` takes with ``feature_axes``
        (flax's flat ``(num_features,)`` over several feature axes reshaped to it)."""
        if p is None or p.ndim != 1 or len(self.feature_axes) == 1:
            return p
        fshape = self.feature_shape(x_shape)
        return p.reshape(fshape) if p.size == math.prod(fshape) else p


def check_index_groups(axis_index_groups: Any) -> None:
    """Refuse flax's ``axis_index_groups`` unless None, for a layer a spec computes
    (``RMSNorm`` without ``spec`` hands it to flax's own computation instead).

    Raises:
        RMSNormError: naming the value.
    """
    if axis_index_groups is not None:
        raise RMSNormError(
            f"axis_index_groups={axis_index_groups!r} is not supported with spec= or in "
            "ResidualRMSNorm; leave spec out (RMSNorm then computes as flax's, under pmap), "
            "or use axis_name with a mesh axis that spans exactly the devices holding one "
            "normalized block"
        )


def resolve(
    *,
    epsilon: float,
    param_dtype: Any,
    use_scale: bool,
    reduction_axes: Any,
    feature_axes: Any,
    force_float32_reductions: bool,
    axis_index_groups: Any,
    spec: RMSNormSpec | None,
) -> Layer:
    """Map flax's RMSNorm fields onto a spec (or check them against ``spec``).

    Without ``spec`` the layer is the ``flax`` preset with these fields.
    With ``spec``, fields left at flax's defaults defer to it; a field set to
    something else that disagrees with the spec is an error, not a silent pick.
    """
    if not force_float32_reductions:
        raise RMSNormError(
            "force_float32_reductions=False with spec= is not supported: flax then takes the "
            "mean square in the input dtype but normalizes in float32, which no spec "
            "reproduces; leave spec out (flax's own computation), or use "
            "force_float32_reductions=True with compute_dtype='input' in the spec to round "
            "every step to the input dtype"
        )
    check_index_groups(axis_index_groups)
    pdt = dtype_name(jnp.dtype(param_dtype))
    fields = {
        "epsilon": epsilon,
        "param_dtype": pdt,
        "use_scale": use_scale,
        "reduction_axes": reduction_axes,
        "feature_axes": feature_axes,
        "force_float32_reductions": force_float32_reductions,
    }
    if spec is None:
        return Layer(
            RMSNormSpec.preset(
                "flax",
                eps=epsilon,
                param_dtype=pdt,
                use_scale=use_scale,
                axes=_axes(reduction_axes),
            ),
            _axes(feature_axes),
        )
    if not isinstance(spec, RMSNormSpec):
        raise RMSNormTypeError(f"spec must be an RMSNormSpec, got {type(spec).__name__}")
    if isinstance(epsilon, jax.core.Tracer):  # a traced value cannot be compared with the spec
        raise RMSNormError(
            f"epsilon={epsilon!r} with spec= is not accepted: the spec holds eps as a Python "
            "number; leave epsilon at its default and set eps in the spec, or leave spec out"
        )
    wanted = {
        "epsilon": spec.eps,
        "param_dtype": spec.param_dtype,
        "use_scale": spec.use_scale,
        "reduction_axes": spec.axes,
    }
    conflicts = [
        f"{name}={fields[name]!r} (the spec has {value!r})"
        for name, value in wanted.items()
        if fields[name] != FLAX_DEFAULTS[name] and _norm(fields[name]) != _norm(value)
    ]
    if conflicts:
        raise RMSNormError(
            f"{', '.join(conflicts)} conflict with spec=; leave these fields at their defaults "
            "or make them agree with the spec"
        )
    feats = spec.axes if feature_axes == FLAX_DEFAULTS["feature_axes"] else _axes(feature_axes)
    return Layer(spec, feats)


def _norm(value: Any) -> Any:
    return (
        _axes(value)
        if isinstance(value, (int, list, tuple)) and not isinstance(value, bool)
        else value
    )


def computes_as_flax(spec: RMSNormSpec) -> bool:
    """Whether ``spec`` is what ``flax.linen.RMSNorm`` / ``flax.nnx.RMSNorm`` compute with
    some fields: the ``flax`` preset with any eps, axes, param dtype and ``use_scale``."""
    flax_fields = {"eps": 1e-6, "axes": (-1,), "param_dtype": "float32", "use_scale": True}
    return spec.replace(**flax_fields) == RMSNormSpec.preset("flax")


def scale_init_for(spec: RMSNormSpec, given: Any, default: Any) -> Any:
    """flax's initializer, or constant ``1 - scale_offset`` (so ``g = 1``) for an offset spec."""
    if given is not default or spec.scale_offset == 0.0:
        return given
    return jax.nn.initializers.constant(1.0 - spec.scale_offset)


def flax_norm_spec(module: Any) -> tuple[RMSNormSpec, tuple]:
    """The spec a ``flax.linen.RMSNorm`` / ``flax.nnx.RMSNorm`` computes, and its feature axes.

    Raises:
        RMSNormError: the module is one no spec describes (``_flax_calls``), or has a
            field ours refuses.
    """
    force = getattr(module, "force_float32_reductions", True)
    why = flax_only_fields(
        module.epsilon, module.reduction_axes, module.axis_index_groups, module.param_dtype
    )
    if why is not None or not force:
        raise RMSNormError(
            f"{why or 'force_float32_reductions=False'}: no spec describes this flax "
            "RMSNorm (only flax's own computation does); a spec needs a Python-number "
            "epsilon >= 0, distinct reduction_axes, a floating param_dtype, "
            "axis_index_groups=None and force_float32_reductions=True"
        )
    layer = resolve(
        epsilon=module.epsilon,
        param_dtype=module.param_dtype,
        use_scale=module.use_scale,
        reduction_axes=module.reduction_axes,
        feature_axes=module.feature_axes,
        force_float32_reductions=force,
        axis_index_groups=module.axis_index_groups,
        spec=None,
    )
    return layer.spec, tuple(layer.feature_axes)
