"""flax's own RMSNorm cases with our classes swapped in, outputs compared bit for bit.

``test_nnx_linen_rmsnorm_equivalence`` (flax tests/nnx/nn/normalization_test.py)
is transcribed: a norm then a Linear, dtype and param_dtype in {float32,
float16}, use_fast_variance, and a mask over the features; each of our
classes is compared with flax's own, and our linen with our nnx as flax's
test does. Then the calls the issue found refused: ``use_scale=False`` with
other reduction axes, an int ``num_features`` over several feature axes, and
``dtype`` rounding once.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_core import RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402

MASK = np.array([True, False, True, False, True])
GRID = list(
    itertools.product(
        [jnp.float32, jnp.float16], [jnp.float32, jnp.float16], [True, False], [None, MASK]
    )
)


def _linen_model(norm_cls):
    class Model(fnn.Module):
        dtype: object = None
        param_dtype: object = jnp.float32
        use_fast_variance: bool = True

        def setup(self):
            self.norm_layer = norm_cls(
                dtype=self.dtype,
                param_dtype=self.param_dtype,
                use_fast_variance=self.use_fast_variance,
            )
            self.linear = fnn.Dense(4, dtype=self.dtype, param_dtype=self.param_dtype)

        def __call__(self, x, *, mask=None):
            return self.linear(self.norm_layer(x, mask=mask))

    return Model


def _nnx_model(norm_cls, dtype, param_dtype, use_fast_variance, variables):
    norm = norm_cls(
        5,
        dtype=dtype,
        param_dtype=param_dtype,
        use_fast_variance=use_fast_variance,
        promote_dtype=lambda x, **kwargs: x,  # as flax's test: the same behaviour as linen
        rngs=nnx.Rngs(42),
    )
    linear = nnx.Linear(5, 4, dtype=dtype, param_dtype=param_dtype, rngs=nnx.Rngs(42))
    linear.kernel[...] = variables["params"]["linear"]["kernel"]
    linear.bias[...] = variables["params"]["linear"]["bias"]
    return lambda x, mask=None: linear(norm(x, mask=mask))


@pytest.mark.parametrize("dtype, param_dtype, fast, mask", GRID, ids=str)
def test_flax_nnx_linen_rmsnorm_equivalence_with_ours(dtype, param_dtype, fast, mask):
    x = jax.random.normal(jax.random.key(0), (10, 5))
    kw = dict(dtype=dtype, param_dtype=param_dtype, use_fast_variance=fast)
    theirs_l, ours_l = _linen_model(fnn.RMSNorm)(**kw), _linen_model(ours_linen.RMSNorm)(**kw)
    variables = theirs_l.init(jax.random.key(1), x)
    expected = theirs_l.apply(variables, x, mask=mask)
    got_linen = ours_l.apply(variables, x, mask=mask)
    assert got_linen.dtype == expected.dtype
    np.testing.assert_array_equal(got_linen, expected)
    theirs_n = _nnx_model(nnx.RMSNorm, dtype, param_dtype, fast, variables)(x, mask=mask)
    ours_n = _nnx_model(ours_nnx.RMSNorm, dtype, param_dtype, fast, variables)(x, mask=mask)
    np.testing.assert_array_equal(ours_n, theirs_n)
    np.testing.assert_array_equal(ours_n, got_linen)  # flax's own assertion, on ours


def test_a_mask_changes_the_statistic_as_flax_does():
    x = jax.random.normal(jax.random.key(2), (3, 5)) * 2
    params = {"params": {"scale": jnp.linspace(0.5, 1.5, 5)}}
    plain = ours_linen.RMSNorm().apply(params, x)
    masked = ours_linen.RMSNorm().apply(params, x, mask=MASK)
    assert not bool(jnp.all(plain == masked))
    np.testing.assert_array_equal(masked, fnn.RMSNorm().apply(params, x, mask=MASK))


def test_a_mask_that_does_not_fit_or_meets_a_partial_statistic_is_refused():
    x = jnp.ones((3, 5))
    with pytest.raises(RMSNormError, match=r"mask has shape \(4,\)"):
        ours_linen.RMSNorm().apply({"params": {"scale": jnp.ones(5)}}, x, mask=np.ones(4, bool))
    spec = RMSNormSpec.preset("flax", partial=0.5)
    with pytest.raises(RMSNormError, match="mask= with partial=0.5"):
        ours_linen.RMSNorm(spec=spec).apply({"params": {"scale": jnp.ones(5)}}, x, mask=MASK)


@pytest.mark.parametrize("axes", [1, (1, 2), -2])
def test_use_scale_false_with_any_reduction_axes(axes):
    x = jax.random.normal(jax.random.key(3), (2, 3, 4, 5))
    theirs, ours = (
        cls(use_scale=False, reduction_axes=axes) for cls in (fnn.RMSNorm, ours_linen.RMSNorm)
    )
    variables = theirs.init(jax.random.key(0), x)
    np.testing.assert_array_equal(ours.apply(variables, x), theirs.apply(variables, x))
    layers = [
        cls(4, use_scale=False, reduction_axes=axes, rngs=nnx.Rngs(0))
        for cls in (nnx.RMSNorm, ours_nnx.RMSNorm)
    ]
    np.testing.assert_array_equal(layers[1](x), layers[0](x))


def test_an_int_num_features_over_several_feature_axes():
    x = jax.random.normal(jax.random.key(4), (2, 3, 4))
    kw = dict(reduction_axes=(1, 2), feature_axes=(1, 2))
    theirs, ours = (
        nnx.RMSNorm(12, rngs=nnx.Rngs(0), **kw),
        ours_nnx.RMSNorm(12, rngs=nnx.Rngs(0), **kw),
    )
    scale = jnp.linspace(0.5, 1.5, 12)
    theirs.scale[...] = scale
    ours.scale[...] = scale
    assert ours.scale.shape == theirs.scale.shape == (12,)
    np.testing.assert_array_equal(ours(x), theirs(x))


@pytest.mark.parametrize("param_dtype", [jnp.bfloat16, jnp.float32])
def test_dtype_rounds_the_output_once(param_dtype):
    x = (jax.random.normal(jax.random.key(5), (4, 64)) * 3).astype(jnp.bfloat16)
    theirs = fnn.RMSNorm(dtype=jnp.float32, param_dtype=param_dtype)
    variables = theirs.init(jax.random.key(0), x)
    variables = jax.tree.map(lambda a: (a * 1.37).astype(a.dtype), variables)
    expected = theirs.apply(variables, x)
    got = ours_linen.RMSNorm(dtype=jnp.float32, param_dtype=param_dtype).apply(variables, x)
    assert got.dtype == expected.dtype == jnp.float32
    np.testing.assert_array_equal(got, expected)


def test_intercepted_flax_calls_keep_mask_and_dtype_bit_for_bit(monkeypatch):
    from rmsnorm_flax.swap import _swap

    calls = []
    real = _swap.rms_norm
    monkeypatch.setattr(_swap, "rms_norm", lambda *a, **k: calls.append(k) or real(*a, **k))
    x = (jax.random.normal(jax.random.key(6), (6, 5)) * 3).astype(jnp.bfloat16)
    layer = fnn.RMSNorm(dtype=jnp.float32, param_dtype=jnp.bfloat16)
    variables = jax.tree.map(lambda a: a * 1.3, layer.init(jax.random.key(0), x))
    expected = jax.jit(lambda v, x: layer.apply(v, x, mask=MASK))(variables, x)
    with ours_linen.intercept_norms():
        routed = jax.jit(lambda v, x: layer.apply(v, x, mask=MASK))
        got = routed(variables, x)
    assert calls and calls[0]["mask"] is MASK and calls[0]["dtype"] == jnp.float32
    assert got.dtype == expected.dtype == jnp.float32
    np.testing.assert_array_equal(got, expected)
