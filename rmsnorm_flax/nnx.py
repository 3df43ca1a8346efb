"""NNX modules: ``RMSNorm`` (a drop-in for ``flax.nnx.RMSNorm``) and ``ResidualRMSNorm``.

Same constructor and parameter layout as flax's (``scale`` of shape
``(num_features,)``), so existing state loads unchanged; ``spec=`` takes an
``rmsnorm_core.RMSNormSpec`` that then decides the semantics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def _as_tuple(axes: Any) -> tuple[int, ...]:
    return tuple(axes) if isinstance(axes, Iterable) else (axes,)


def _fixed(name: str, value: Any) -> None:
    raise RMSNormError(
        f"{name}={value!r}: an rmsnorm_flax.nnx.RMSNorm's {name} is fixed when it is built "
        f"(its spec holds it); build a new layer with {name}={value!r} (or spec=...)"
    )


class RMSNorm(nnx.Module):
    """RMSNorm with flax.nnx.RMSNorm's constructor (Flax 0.12), plus ``spec`` and ``bias_init``.

    Without ``spec``, ``x`` and the scale go through ``promote_dtype`` (flax's
    default: both cast to ``dtype``, or to their promoted dtype) before
    normalizing, exactly as flax does; a layer or call no spec describes (an
    array, traced or negative ``epsilon``, ``reduction_axes=()`` or an axis twice,
    ``axis_index_groups``, complex input: ``rmsnorm_flax.functional._flax_calls``)
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
            spec describes (its fields are then in ``flax_epsilon``, ``flax_axes``).
        flax_epsilon: flax's ``epsilon`` as given, for a layer no spec describes
            (an array is state, as in flax); else None.
        flax_axes: ``(reduction_axes, feature_axes)`` as given, for such a layer; else None.
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
        # flax's own fields, kept as flax keeps them when the layer is one no spec
        # describes (see _flax_calls: a traced, array or negative epsilon, reduction_axes=()
        # or an axis named twice, axis_index_groups); such a layer computes as flax's
        outside = spec is None and self._as_flax
        outside = (
            outside and flax_only_fields(epsilon, reduction_axes, axis_index_groups) is not None
        )
        self.axis_index_groups = axis_index_groups  # not None: outside, or refused by resolve
        self.flax_epsilon: Any = epsilon if outside else None  # an array is data, as flax's
        axes = (_as_tuple(reduction_axes), _as_tuple(feature_axes))
        self.flax_axes: tuple | None = axes if outside else None
        self.layer: Layer | None = nnx.static(
            None
            if outside
            else resolve(
                epsilon=epsilon,
                param_dtype=param_dtype,
                use_scale=use_scale,
                reduction_axes=reduction_axes,
                feature_axes=feature_axes,
                force_float32_reductions=True,
                axis_index_groups=axis_index_groups,
                spec=spec,
            )
        )
        s = None if outside else self.layer.spec
        # an int is flax's flat (num_features,) scale, also over several feature axes
        shape = (num_features,) if isinstance(num_features, int) else tuple(num_features)
        pdt = jnp.dtype(param_dtype if outside else s.param_dtype)
        self.scale: nnx.Param | None = nnx.data(None)
        self.bias: nnx.Param | None = nnx.data(None)
        if use_scale if outside else s.use_scale:
            init = scale_init if outside else scale_init_for(s, scale_init, _ONES)
            self.scale = nnx.Param(init(rngs.params(), shape, pdt), **scale_metadata)
        if not outside and s.use_bias:
            self.bias = nnx.Param(bias_init(rngs.params(), shape, pdt))
        self.num_features = num_features
        self.dtype = dtype
        self.axis_name = axis_name
        self.spec_given = spec is not None
        self.vjp = check_vjp(vjp)
        if promote_dtype is None and (
            spec is None or (dtype is None and self._as_flax and computes_as_flax(spec))
        ):  # flax's casts: x cast once, so that its gradient is rounded once, as flax's
            promote_dtype = nnx_dtypes.promote_dtype
        self.promote_dtype = promote_dtype

    # flax.nnx.RMSNorm's fields that the spec holds: readable as flax's; fixed once built
    # (flax reads them at each call; ours resolved them into the spec, so an assignment
    # would be ignored silently: it is refused instead)
    @property
    def epsilon(self) -> Any:
        """The spec's eps (flax's ``epsilon``; as given, for a layer no spec describes)."""
        return self.flax_epsilon if self.layer is None else self.layer.spec.eps

    @epsilon.setter
    def epsilon(self, value: Any) -> None:
        _fixed("epsilon", value)

    @property
    def reduction_axes(self) -> tuple[int, ...]:
        """The spec's normalized axes (flax's ``reduction_axes``)."""
        if self.layer is None:
            return _as_tuple(self.flax_axes[0])
        return tuple(self.layer.spec.axes)

    @reduction_axes.setter
    def reduction_axes(self, value: Any) -> None:
        _fixed("reduction_axes", value)

    @property
    def feature_axes(self) -> tuple[int, ...]:
        """The axes the scale is kept over (flax's ``feature_axes``)."""
        if self.layer is None:
            return _as_tuple(self.flax_axes[1])
        return tuple(self.layer.feature_axes)

    @feature_axes.setter
    def feature_axes(self, value: Any) -> None:
        _fixed("feature_axes", value)

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
