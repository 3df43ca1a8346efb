"""``feature_axes`` outside ``reduction_axes``, as flax accepts them: the scale spans
axes that are not normalized (broadcast over the rest). Our linen and nnx layers
give flax's ``y``, ``dx`` and ``dscale`` bit for bit under ``jit``, in float32,
bfloat16 and float16, including the issue's ``reduction_axes=-1,
feature_axes=(1,)``."""

from __future__ import annotations

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_core import RMSNormError, RMSNormSpec, assert_close, dtype_plan  # noqa: E402
from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402
from rmsnorm_flax import rms_norm  # noqa: E402

DTYPES = ["float32", "bfloat16", "float16"]
CASES = {  # name: (shape, reduction_axes, feature_axes)
    "issue-red-1-feat1": ((2, 3, 8), -1, (1,)),
    "red-1-feat01": ((3, 4, 5), -1, (0, 1)),
    "red1-feat02": ((2, 5, 6), 1, (0, 2)),
    "red12-feat01": ((4, 6, 5), (1, 2), (0, 1)),
    "red-1-feat1-repeated": ((3, 2, 7), -1, (1, -2)),  # flax counts an axis once
}


def _inputs(shape, dtype, scale_shape):
    kx, ks, kd = jax.random.split(jax.random.key(sum(shape)), 3)
    x = (jax.random.normal(kx, shape) * 2).astype(dtype)
    scale = jax.random.uniform(ks, scale_shape, minval=0.5, maxval=1.5)
    return x, scale, jax.random.normal(kd, shape)


def _linen_grads(module):
    def run(x, scale, dy):
        y, pull = jax.vjp(lambda x, s: module.apply({"params": {"scale": s}}, x), x, scale)
        return (y, *pull(dy.astype(y.dtype)))

    return jax.jit(run)


def _assert_equal(got, expected):
    for name, a, b in zip(("y", "dx", "dscale"), got, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert bool(jnp.array_equal(a, b)), f"{name}: {int(jnp.sum(a != b))} differ"


def _case(case, dtype):
    shape, red, feat = CASES[case]
    kw = {"reduction_axes": red, "feature_axes": feat}
    theirs = fnn.RMSNorm(**kw)
    scale_shape = theirs.init(jax.random.key(0), jnp.ones(shape))["params"]["scale"].shape
    return kw, theirs, _inputs(shape, dtype, scale_shape)


# every case in float32; the and one with two normalized axes in each dtype
GRID = [(c, "float32") for c in CASES] + [
    (c, d) for c in ("issue-red-1-feat1", "red12-feat01") for d in DTYPES[1:]
]


@pytest.mark.parametrize("case, dtype", GRID, ids=["-".join(g) for g in GRID])
def test_linen_takes_flax_s_feature_axes(case, dtype):
    kw, theirs, (x, scale, dy) = _case(case, dtype)
    ours = ours_linen.RMSNorm(**kw)
    variables = ours.init(jax.random.key(0), x)
    assert variables["params"]["scale"].shape == scale.shape  # flax's parameter layout
    _assert_equal(_linen_grads(ours)(x, scale, dy), _linen_grads(theirs)(x, scale, dy))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["issue-red-1-feat1"])
def test_nnx_takes_flax_s_feature_axes(case, dtype):
    kw, _, (x, scale, dy) = _case(case, dtype)
    n = math.prod(scale.shape)
    results = []
    for cls in (nnx.RMSNorm, ours_nnx.RMSNorm):
        layer = cls(n, rngs=nnx.Rngs(0), **kw)
        layer.scale[...] = scale.reshape(n)
        results.append(_nnx_grads(layer, x, dy))
    _assert_equal(results[1], results[0])


@nnx.jit
def _nnx_grads(layer, x, dy):
    y, pull = jax.vjp(lambda m, x: m(x), layer, x)
    dm, dx = pull(dy.astype(y.dtype))
    return y, dx, dm.scale[...]


@pytest.mark.parametrize("case", ["issue-red-1-feat1", "red12-feat01"])
def test_replace_norms_keeps_flax_s_fields(case):
    # built from the flax layer's own fields: feature_axes, reduction_axes and dtype kept
    kw, _, (x, scale, dy) = _case(case, "bfloat16")
    kw = {**kw, "dtype": jnp.float32}
    n = math.prod(scale.shape)
    model = nnx.Sequential(nnx.RMSNorm(n, rngs=nnx.Rngs(0), **kw))
    model.layers[0].scale[...] = scale.reshape(n)
    expected = _nnx_grads(model.layers[0], x, dy)
    param = model.layers[0].scale
    assert list(ours_nnx.replace_norms(model)) == ["layers.0"]
    assert isinstance(model.layers[0], ours_nnx.RMSNorm) and model.layers[0].scale is param
    _assert_equal(_nnx_grads(model.layers[0], x, dy), expected)


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_the_analytic_vjp_takes_feature_axes_too(dtype):
    kw, _, (x, scale, dy) = _case("red12-feat01", dtype)
    exact = _linen_grads(ours_linen.RMSNorm(**kw))(x, scale, dy)
    fast = _linen_grads(ours_linen.RMSNorm(vjp="analytic", **kw))(x, scale, dy)
    assert bool(jnp.array_equal(fast[0], exact[0]))
    key = dtype_plan(RMSNormSpec.preset("flax"), dtype).gradient_precision
    for a, b in zip(fast[1:], exact[1:], strict=True):
        assert a.shape == b.shape
        assert_close(np.asarray(a), np.asarray(b), key, gradient=True)


def test_the_functional_takes_feature_axes_and_checks_the_scale_against_them():
    x, scale, _ = _inputs((2, 3, 8), "float32", (3,))
    spec = RMSNormSpec.preset("flax")
    expected = fnn.RMSNorm(feature_axes=1).apply({"params": {"scale": scale}}, x)
    assert bool(jnp.array_equal(rms_norm(x, spec, scale, feature_axes=1), expected))
    match = r"scale has shape \(8,\); expected \(3,\), the sizes of feature_axes=1 "
    with pytest.raises(RMSNormError, match=match):
        rms_norm(x, spec, jnp.ones(8), feature_axes=1)
    with pytest.raises(RMSNormError, match=r"feature_axes=\(1, 3\) is out of range"):
        rms_norm(x, spec, scale, feature_axes=(1, 3))


def test_the_residual_layer_takes_feature_axes():
    x, scale, _ = _inputs((2, 3, 8), "bfloat16", (3,))
    r = x[::-1]
    variables = {"params": {"scale": scale}}
    y, s = ours_linen.ResidualRMSNorm(feature_axes=1).apply(variables, x, r)
    assert bool(jnp.array_equal(s, x + r))
    assert bool(jnp.array_equal(y, fnn.RMSNorm(feature_axes=1).apply(variables, s)))
