"""NNX modules: ``RMSNorm`` (a drop-in for ``flax.nnx.RMSNorm``) and ``ResidualRMSNorm``.

Same constructor and parameter layout as flax's (``scale`` of shape
``(num_features,)``), so existing state loads unchanged; ``spec=`` takes an
``rmsnorm_core.RMSNormSpec`` that then decides the semantics.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes as nnx_dtypes

from rmsnorm_core import ReplaceReport, RMSNormSpec
from rmsnorm_flax.functional._fields import Layer, resolve, scale_init_for
from rmsnorm_flax.functional._functional import rms_norm, rms_norm_residual
from rmsnorm_flax.swap._swap import replace_norms as _replace

_ONES = nnx.initializers.ones
_ZEROS = nnx.initializers.zeros


class RMSNorm(nnx.Module):
    """RMSNorm with flax.nnx.RMSNorm's constructor (Flax 0.12), plus ``spec`` and ``bias_init``.

    Without ``spec``, ``x`` and the scale go through ``promote_dtype`` (flax's
    default: both cast to ``dtype``, or to their promoted dtype) before
    normalizing, exactly as flax does. With ``spec`` the spec decides the
    dtypes: ``promote_dtype`` runs only if passed explicitly, and ``dtype``
    is the output dtype. ``mask=`` is flax's. The arguments mean what
    ``rmsnorm_flax.linen.RMSNorm``'s fields of the same names mean, and
    agree with ``spec`` likewise.

    Args:
        num_features: size of the feature dim (a tuple for several
            ``feature_axes``).
        epsilon: the spec's ``eps``. Default ``1e-6``.
        dtype: as described above. Default None.
        param_dtype: dtype of ``scale`` / ``bias``. Default float32.
        use_scale: learn ``scale``. Default True.
        scale_init: initializer of ``scale`` (ones; ``1 - scale_offset``
            for an offset spec).
        reduction_axes: the normalized axes. Default -1.
        feature_axes: the axes ``scale`` spans. Default -1.
        axis_name: a mesh axis the statistic is summed over.
        axis_index_groups: refused unless None.
        use_fast_variance: accepted and ignored.
        promote_dtype: flax's dtype-promotion function, or None (above).
        rngs: the ``nnx.Rngs`` the initializers draw from.
        scale_metadata: metadata for the ``scale`` ``nnx.Param``.
        spec: an ``RMSNormSpec`` deciding the semantics.
        bias_init: initializer of ``bias``, used when ``spec.use_bias``.

    Attributes:
        layer: the resolved spec and feature axes (static).
        scale: the ``nnx.Param`` scale, or None without ``use_scale``.
        bias: the ``nnx.Param`` bias, or None without ``use_bias``.
        spec_given: whether ``spec`` was passed (it decides the dtypes then).
    """

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
    ) -> None:
        self.layer: Layer = nnx.static(
            resolve(
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
        s = self.layer.spec
        # an int is flax's flat (num_features,) scale, also over several feature axes
        shape = (num_features,) if isinstance(num_features, int) else tuple(num_features)
        pdt = jnp.dtype(s.param_dtype)
        self.scale: nnx.Param | None = nnx.data(None)
        self.bias: nnx.Param | None = nnx.data(None)
        if s.use_scale:
            init = scale_init_for(s, scale_init, _ONES)
            self.scale = nnx.Param(init(rngs.params(), shape, pdt), **scale_metadata)
        if s.use_bias:
            self.bias = nnx.Param(bias_init(rngs.params(), shape, pdt))
        self.num_features = num_features
        self.dtype = dtype
        self.axis_name = axis_name
        self.spec_given = spec is not None
        if promote_dtype is None and spec is None:
            promote_dtype = nnx_dtypes.promote_dtype
        self.promote_dtype = promote_dtype

    def _inputs(self, x: jax.Array) -> tuple[jax.Array, Any, Any]:
        self.layer.check(x.shape)
        scale = None if self.scale is None else self.scale[...]
        bias = None if self.bias is None else self.bias[...]
        if self.promote_dtype is not None:  # flax's step: x and scale to one dtype
            x, scale = self.promote_dtype((x, scale), dtype=self.dtype)
        return x, self.layer.expand(scale, x.shape), self.layer.expand(bias, x.shape)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """Normalize ``x`` (formula: ``rmsnorm_core.RMSNormSpec``); ``mask``: booleans
        broadcastable to ``x``, the statistic over the True elements (flax's)."""
        x, scale, bias = self._inputs(x)
        return rms_norm(
            x, self.layer.spec, scale, bias, axis_name=self.axis_name, mask=mask, dtype=self.dtype
        )


class ResidualRMSNorm(RMSNorm):
    """``__call__(x, residual) -> (y, s)``: ``s = x + residual``, ``y = norm(s)``."""

    def __call__(self, x: jax.Array, residual: jax.Array) -> tuple[jax.Array, jax.Array]:  # type: ignore[override]
        """Return ``(y, s)``; fused equals unfused (``y`` is computed from ``s``)."""
        x, scale, bias = self._inputs(x)
        spec = self.layer.spec
        return rms_norm_residual(
            x, residual, spec, scale, bias, axis_name=self.axis_name, dtype=self.dtype
        )


def replace_norms(model: nnx.Module) -> ReplaceReport:
    """Replace every RMSNorm-like leaf of ``model`` with ours, in place.

    Every ``flax.nnx.RMSNorm`` (with or without a scale), and any leaf module
    whose class name contains "norm" and whose spec ``infer_spec`` measures,
    becomes :class:`RMSNorm` with the measured spec and the *same*
    ``nnx.Param`` objects (optimizer state survives, ``nnx.state`` paths do not
    change). The probes run on ``nnx.clone`` copies, so no module's state sees
    them (an ``nnx.BatchNorm``'s statistics stay as they were), and a scale of
    more than ``rmsnorm_core.PROBE_LIMIT`` elements is refused before any probe.
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
