"""Linen modules: ``RMSNorm`` (a drop-in for ``flax.linen.RMSNorm``) and ``ResidualRMSNorm``.

Same fields, defaults and parameter (``scale``, over ``feature_axes``) as
flax's, so existing params load unchanged; ``spec=`` takes an
``rmsnorm_core.RMSNormSpec`` that then decides the semantics. ``__call__`` is
one call to :func:`rmsnorm_flax.rms_norm`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rmsnorm_core import RMSNormSpec
from rmsnorm_flax.functional._fields import Layer, resolve, scale_init_for
from rmsnorm_flax.functional._flax_calls import feature_shape, flax_only, flax_rms_norm_of
from rmsnorm_flax.functional._functional import rms_norm, rms_norm_residual
from rmsnorm_flax.swap._swap import intercept_norms as _intercept

_ONES = nn.initializers.ones
_ZEROS = nn.initializers.zeros


class RMSNorm(nn.Module):
    """RMSNorm with flax.linen.RMSNorm's fields, plus ``spec`` and ``bias_init``.

    The fields up to ``force_float32_reductions`` are flax.linen.RMSNorm's
    (Flax 0.12), with its defaults. Without ``spec`` they make the ``flax``
    preset; with ``spec``, a field left at flax's default defers to the spec
    and one set to a value the spec disagrees with is an error.

    Attributes:
        epsilon: the spec's ``eps``. Default ``1e-6``. One no spec takes
            (negative, NaN, ...) is computed as flax's (without ``spec``).
        dtype: the output dtype, rounded once from the computation (flax's);
            None (default) keeps the spec's output dtype.
        param_dtype: dtype of ``scale`` / ``bias``. Default float32.
        use_scale: learn ``scale``. Default True.
        scale_init: initializer of ``scale``. Left at the default (ones), a
            spec with a ``scale_offset`` starts it at ``1 - scale_offset``
            instead, so that ``g = 1``.
        reduction_axes: the normalized axes (the spec's ``axes``). Default -1.
        feature_axes: the axes ``scale`` spans, any axes of ``x`` as in flax
            (broadcast over the rest). Default -1.
        axis_name: a mesh axis the statistic is summed over, for a feature
            dim sharded across devices (see :func:`rmsnorm_flax.rms_norm`).
        axis_index_groups: flax's ``lax.pmean`` groups: not None computes as
            flax's, under ``pmap`` (refused with ``spec`` and in
            ``ResidualRMSNorm``).
        use_fast_variance: accepted and ignored (a mean square has no
            variance to stabilize).
        force_float32_reductions: flax's: False takes the statistic in the
            input dtype (``dtype``'s, when given), computed as flax does (no
            spec describes it; refused with ``spec``).
        spec: an ``RMSNormSpec`` deciding the semantics (default: the
            ``flax`` preset with the fields above).
        bias_init: initializer of ``bias``, used when ``spec.use_bias``.
        vjp: ``"autodiff"`` (default: flax's own gradients for its preset, bit
            for bit) or ``"analytic"`` (the VJP that saves only the per-row
            statistic); see :func:`rmsnorm_flax.rms_norm`.
    """

    epsilon: float = 1e-6
    dtype: Any = None
    param_dtype: Any = jnp.float32
    use_scale: bool = True
    scale_init: Any = _ONES
    reduction_axes: Any = -1
    feature_axes: Any = -1
    axis_name: str | None = None
    axis_index_groups: Any = None
    use_fast_variance: bool = True
    force_float32_reductions: bool = True
    spec: RMSNormSpec | None = None
    bias_init: Any = _ZEROS
    vjp: str = "autodiff"

    def _layer(self) -> Layer:
        return resolve(
            epsilon=self.epsilon,
            param_dtype=self.param_dtype,
            use_scale=self.use_scale,
            reduction_axes=self.reduction_axes,
            feature_axes=self.feature_axes,
            force_float32_reductions=self.force_float32_reductions,
            axis_index_groups=self.axis_index_groups,
            spec=self.spec,
        )

    def _params(self, layer: Layer, x: jax.Array) -> tuple[Any, Any]:
        shape = layer.feature_shape(x.shape)
        dtype = jnp.dtype(layer.spec.param_dtype)
        scale = bias = None
        if layer.spec.use_scale:
            init = scale_init_for(layer.spec, self.scale_init, _ONES)
            scale = layer.param(self.param("scale", init, shape, dtype), x.shape)
        if layer.spec.use_bias:
            bias = layer.param(self.param("bias", self.bias_init, shape, dtype), x.shape)
        return scale, bias

    def _flax_only(self, x: jax.Array) -> bool:
        """Whether this call is one only flax's own op sequence computes (static)."""
        return self.spec is None and flax_only(
            x,
            epsilon=self.epsilon,
            reduction_axes=self.reduction_axes,
            dtype=self.dtype,
            force_float32_reductions=self.force_float32_reductions,
            axis_index_groups=self.axis_index_groups,
            param_dtype=self.param_dtype,
        )

    def _flax_call(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        """flax's own computation, for a call no spec describes (``_flax_calls``)."""
        scale = None
        if self.use_scale:
            shape = feature_shape(x.shape, self.feature_axes)
            scale = self.param("scale", self.scale_init, shape, self.param_dtype)
        return flax_rms_norm_of(
            self,
            x,
            scale,
            mask,
            force_float32_reductions=self.force_float32_reductions,
            param_dtype=self.param_dtype,
        )

    @nn.compact
    def __call__(self, x: jax.Array, *, mask: jax.Array | None = None) -> jax.Array:
        """Normalize ``x`` (formula: ``rmsnorm_core.RMSNormSpec``); ``mask``: booleans
        broadcastable to ``x``, the statistic over the True elements (flax's).

        A call no spec describes (``rmsnorm_flax.functional._flax_calls``: integer
        or complex input, a traced epsilon, ``force_float32_reductions=False``, ...)
        is computed as flax's, op for op, with autodiff gradients whatever ``vjp``
        says."""
        x = jnp.asarray(x)
        if self._flax_only(x):
            return self._flax_call(x, mask)
        layer = self._layer()
        scale, bias = self._params(layer, x)
        return rms_norm(
            x,
            layer.spec,
            scale,
            bias,
            axis_name=self.axis_name,
            mask=mask,
            dtype=self.dtype,
            feature_axes=layer.feature_axes,
            vjp=self.vjp,
        )


class ResidualRMSNorm(RMSNorm):
    """``__call__(x, residual) -> (y, s)``: ``s = x + residual``, ``y = norm(s)``."""

    @nn.compact
    def __call__(self, x: jax.Array, residual: jax.Array) -> tuple[jax.Array, jax.Array]:  # type: ignore[override]
        """Return ``(y, s)``; fused equals unfused (``y`` is computed from ``s``)."""
        layer = self._layer()
        scale, bias = self._params(layer, x)
        return rms_norm_residual(
            x,
            residual,
            layer.spec,
            scale,
            bias,
            axis_name=self.axis_name,
            dtype=self.dtype,
            feature_axes=layer.feature_axes,
            vjp=self.vjp,
        )


def intercept_norms() -> Any:
    """A context manager: every ``flax.linen.RMSNorm`` call inside runs through our kernel
    with that module's own fields and variables, so a linen model changes by one
    line, not its code.

    Built on ``flax.linen.intercept_methods``. Initialization is left to flax
    (it creates the parameters); only applications are routed, and of those only
    the calls a spec describes (a call ``rmsnorm_flax.functional._flax_calls`` names,
    such as complex input or a traced epsilon, runs flax's own code). Routing happens
    when a function is traced: a function jitted inside the context keeps our
    kernel in its cached trace after the context ends, and one traced before
    it keeps flax's.
    """
    return _intercept()


__all__ = ["RMSNorm", "ResidualRMSNorm", "RMSNormSpec", "intercept_norms"]
