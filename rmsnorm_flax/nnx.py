"""NNX modules: ``RMSNorm`` (a drop-in for ``flax.nnx.RMSNorm``) and ``ResidualRMSNorm``.

Same constructor and parameter layout as flax's (``scale`` of shape
``(num_features,)``), so existing state loads unchanged; ``spec=`` takes an
``rmsnorm_core.RMSNormSpec`` that then decides the semantics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes as nnx_dtypes

from rmsnorm_core import ReplaceReport, RMSNormError, RMSNormSpec
from rmsnorm_flax.functional._fields import (
    Layer,
    computes_as_flax,
    resolve,
    scale_init_for,
)
from rmsnorm_flax.functional._flax_calls import flax_only_fields, flax_only_input, flax_rms_norm_of
from rmsnorm_flax.functional._functional import check_vjp, rms_norm, rms_norm_residual
from rmsnorm_flax.swap._swap import replace_norms as _replace

_ONES = nnx.initializers.ones
_ZEROS = nnx.initializers.zeros


#: flax's fields that ours resolves into the layer when it is built or assigned.
_RESOLVED = ("epsilon", "reduction_axes", "feature_axes", "axis_index_groups")


def _fixed(name: str, value: Any) -> None:
    raise RMSNormError(
        f"{name}={value!r}: the {name} of an rmsnorm_flax.nnx.RMSNorm built with spec= is "
        f"fixed (the spec holds it); build a new layer with spec=... (or without spec=)"
    )


class RMSNorm(nnx.Module):
    """RMSNorm with flax.nnx.RMSNorm's constructor (Flax 0.12), plus ``spec`` and ``bias_init``.

    Without ``spec``, ``x`` and the scale go through ``promote_dtype`` (flax's
    default: both cast to ``dtype``, or to their promoted dtype) before
    normalizing, exactly as flax does; a layer or call no spec describes (an
    array, traced or negative ``epsilon``, ``reduction_axes=()`` or an axis twice,
    ``axis_index_groups``, a complex ``param_dtype``, complex input:
    ``rmsnorm_flax.functional._flax_calls``)
    computes as flax's, op for op, and such a layer's ``layer`` is None. With
    ``spec`` the spec decides the dtypes: ``promote_dtype`` runs only if passed
    explicitly, or without
    ``dtype`` on a spec flax computes (the ``flax`` preset with any eps,
    axes, param dtype and ``use_scale``), where it changes no value but
    gives flax's gradients; ``dtype`` is the output dtype. ``mask=`` is
    flax's. The arguments mean what ``rmsnorm_flax.linen.RMSNorm``'s fields
    of the same names mean, and agree with ``spec`` likewise.

    Args:
        num_features: size of the feature dim (a tuple for several
            ``feature_axes``).
        epsilon: the spec's ``eps``. Default ``1e-6`` (one no spec takes: above).
        dtype: as described above. Default None.
        param_dtype: dtype of ``scale`` / ``bias``. Default float32.
        use_scale: learn ``scale``. Default True.
        scale_init: initializer of ``scale`` (ones; ``1 - scale_offset``
            for an offset spec).
        reduction_axes: the normalized axes. Default -1.
        feature_axes: the axes ``scale`` spans, any axes of ``x`` as in flax.
            Default -1.
        axis_name: a mesh axis the statistic is summed over.
        axis_index_groups: not None computes as flax's, under ``pmap``.
        use_fast_variance: accepted and ignored.
        promote_dtype: flax's dtype-promotion function, or None (above).
        rngs: the ``nnx.Rngs`` the initializers draw from.
        scale_metadata: metadata for the ``scale`` ``nnx.Param``.
        spec: an ``RMSNormSpec`` deciding the semantics.
        bias_init: initializer of ``bias``, used when ``spec.use_bias``.
        vjp: ``"autodiff"`` (default: flax's own gradients for its preset, bit
            for bit) or ``"analytic"`` (the VJP that saves only the per-row
            statistic); see :func:`rmsnorm_flax.rms_norm`.

    Attributes:
        layer: the resolved spec and feature axes (static); None for a layer no
            spec describes (it computes as flax's, from its flax fields).
        epsilon: as given, as flax keeps it (an array is data: in ``nnx.state``
            under ``epsilon``, as flax's); with ``spec``, the spec's eps. Assigning
            it, ``reduction_axes``, ``feature_axes`` or ``axis_index_groups`` resolves
            the layer anew (flax reads them at each call); with ``spec`` they are
            fixed. flax's other arguments, ``num_features`` to ``promote_dtype``,
            are attributes of the same names, likewise.
        scale: the ``nnx.Param`` scale, or None without ``use_scale``.
        bias: the ``nnx.Param`` bias, or None without ``use_bias``.
        spec_given: whether ``spec`` was passed (it decides the dtypes then).
        vjp: how gradients are computed (above).
    """

    #: Whether flax.nnx.RMSNorm computes this layer's calls on a flax spec (the residual
    #: layer has no flax counterpart: promoting x there would change its residual dtype).
    _as_flax = True

    def __init__(
        self,
        num_features: int,
        *,
        epsilon: float = 1e-6,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        use_scale: bool = True,
        scale_init: Any = _ONES,
        reduction_axes: Any = -1,
        feature_axes: Any = -1,
        axis_name: str | None = None,
        axis_index_groups: Any = None,
        use_fast_variance: bool = True,
        promote_dtype: Any = None,
        rngs: nnx.Rngs,
        scale_metadata: Mapping[str, Any] = MappingProxyType({}),
        spec: RMSNormSpec | None = None,
        bias_init: Any = _ZEROS,
        vjp: str = "autodiff",
    ) -> None:
        layer = self._resolve(
            spec,
            epsilon=epsilon,
            param_dtype=param_dtype,
            use_scale=use_scale,
            reduction_axes=reduction_axes,
            feature_axes=feature_axes,
            axis_index_groups=axis_index_groups,
        )
        if layer is not None and spec is not None:  # the fields read back what the spec holds
            epsilon, reduction_axes = layer.spec.eps, layer.spec.axes
            feature_axes, use_scale = layer.feature_axes, layer.spec.use_scale
            param_dtype = jnp.dtype(layer.spec.param_dtype)
        # an int is flax's flat (num_features,) scale, also over several feature axes
        shape = (num_features,) if isinstance(num_features, int) else tuple(num_features)
        self.scale: nnx.Param | None = nnx.data(None)
        self.bias: nnx.Param | None = nnx.data(None)
        if use_scale:
            init = scale_init if layer is None else scale_init_for(layer.spec, scale_init, _ONES)
            self.scale = nnx.Param(init(rngs.params(), shape, param_dtype), **scale_metadata)
        if layer is not None and layer.spec.use_bias:
            self.bias = nnx.Param(bias_init(rngs.params(), shape, jnp.dtype(param_dtype)))
        # flax's fields, named and kept as flax keeps them (an array epsilon is data: in
        # nnx.state as flax's "epsilon"); see __setattr__ for an assignment
        self.num_features = num_features
        self.epsilon = epsilon
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.use_scale = use_scale
        self.reduction_axes = reduction_axes
        self.feature_axes = feature_axes
        self.axis_name = axis_name
        self.axis_index_groups = axis_index_groups
        self.use_fast_variance = use_fast_variance
        self.spec_given = spec is not None
        self.vjp = check_vjp(vjp)
        if promote_dtype is None and (
            spec is None or (dtype is None and self._as_flax and computes_as_flax(spec))
        ):  # flax's casts: x cast once, so that its gradient is rounded once, as flax's
            promote_dtype = nnx_dtypes.promote_dtype
        self.promote_dtype = promote_dtype
        self.layer: Layer | None = nnx.static(layer)  # last: __setattr__ re-resolves from here on

    def _resolve(self, spec: RMSNormSpec | None, **fields: Any) -> Layer | None:
        """The resolved layer for flax's ``fields``, or None for fields no spec describes
        (``_flax_calls``: such a layer computes as flax's, op for op)."""
        keys = ("epsilon", "reduction_axes", "axis_index_groups", "param_dtype")
        if spec is None and self._as_flax and flax_only_fields(*map(fields.get, keys)) is not None:
            return None
        return resolve(**fields, force_float32_reductions=True, spec=spec)

    def __setattr__(self, name: str, value: Any) -> None:
        """An attribute, set as flax's ``nnx.Module`` sets it; a field the layer resolved
        (``epsilon``, ``reduction_axes``, ``feature_axes``, ``axis_index_groups``) is
        resolved anew, as flax reads its fields at each call (once built with ``spec=``,
        they are fixed: the spec holds them).

        Raises:
            RMSNormError: a field of a layer built with ``spec=``, or a value ours refuses.
        """
        if name not in _RESOLVED or "layer" not in vars(self):
            super().__setattr__(name, value)
            return
        if self.spec_given:
            _fixed(name, value)
        fields = {f: getattr(self, f) for f in _RESOLVED}
        # the value itself, also when wrapped by nnx.data / nnx.static (a dataclass field)
        marked = isinstance(value, dataclasses.Field) and "nnx_value" in value.metadata
        fields[name] = value.metadata["nnx_value"] if marked else value
        scale = None if self.scale is None else self.scale[...]
        pdt = self.param_dtype if scale is None else scale.dtype  # what the layer holds
        layer = self._resolve(None, param_dtype=pdt, use_scale=scale is not None, **fields)
        super().__setattr__(name, value)
        super().__setattr__("layer", layer)

    def _inputs(self, x: jax.Array) -> tuple[jax.Array, Any, Any]:
        scale = None if self.scale is None else self.scale[...]
        bias = None if self.bias is None else self.bias[...]
        if self.promote_dtype is not None:  # flax's step: x and scale to one dtype
            x, scale = self.promote_dtype((x, scale), dtype=self.dtype)
        if self.layer is None:
            return x, scale, bias
        return x, self.layer.param(scale, x.shape), self.layer.param(bias, x.shape)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Normalize ``x`` (formula: ``rmsnorm_core.RMSNormSpec``); ``mask``: booleans
        broadcastable to ``x``, the statistic over the True elements (flax's).

        A call no spec describes (``rmsnorm_flax.functional._flax_calls``: complex
        input, a traced epsilon, ...) is computed as flax's, op for op, with autodiff
        gradients whatever ``vjp`` says."""
        x, scale, bias = self._inputs(x)
        if self._flax_only(x):
            return flax_rms_norm_of(self, x, scale, mask)
        return rms_norm(x, self.layer.spec, scale, bias, mask=mask, **self._options())

    def _flax_only(self, x: jax.Array) -> bool:
        """Whether this call is one only flax's own op sequence computes (static)."""
        if self.layer is None:
            return True
        if self.spec_given or not self._as_flax:
            return False
        return flax_only_input(x, reduction_axes=self.layer.spec.axes, dtype=self.dtype)

    def _options(self) -> dict[str, Any]:
        """The keywords every call passes on to the functional."""
        return {
            "axis_name": self.axis_name,
            "dtype": self.dtype,
            "feature_axes": self.layer.feature_axes,
            "vjp": self.vjp,
        }


class ResidualRMSNorm(RMSNorm):
    """``__call__(x, residual) -> (y, s)``: ``s = x + residual``, ``y = norm(s)``."""

    _as_flax = False

    def __call__(self, x: jax.Array, residual: jax.Array) -> tuple[jax.Array, jax.Array]:  # type: ignore[override]
        """Return ``(y, s)``; fused equals unfused (``y`` is computed from ``s``)."""
        x, scale, bias = self._inputs(x)
        return rms_norm_residual(x, residual, self.layer.spec, scale, bias, **self._options())


def replace_norms(model: nnx.Module) -> ReplaceReport:
    """Replace every RMSNorm-like leaf of ``model`` with ours, in place.

    Every ``flax.nnx.RMSNorm`` (with or without a scale) becomes
    :class:`RMSNorm` built from its own fields (``dtype``, ``feature_axes``
    and ``promote_dtype`` included: flax's outputs and gradients bit for bit),
    and any other leaf module whose class name contains "norm" and whose spec
    ``infer_spec`` measures becomes :class:`RMSNorm` with the measured spec;
    each keeps the *same* ``nnx.Param`` objects (optimizer state survives,
    ``nnx.state`` paths do not change). The probes run on ``nnx.clone``
    copies, so no module's state sees them (an ``nnx.BatchNorm``'s statistics
    stay as they were), and a scale of more than ``rmsnorm_core.PROBE_LIMIT``
    elements is refused before any probe.
    A module shared at several paths gets one replacement, shared likewise. A
    candidate holding state ours would not keep (a variable other than ``scale``
    and ``bias``), or that no spec reproduces, is left in place, with the reason
    in ``report.skipped``.

    Returns:
        An ``rmsnorm_core.ReplaceReport``: ``{path: spec}`` of what was replaced
        and ``.skipped``, ``{path: reason}`` of what was not.
    """
    return _replace(model, RMSNorm)


__all__ = ["RMSNorm", "ResidualRMSNorm", "RMSNormSpec", "replace_norms"]
