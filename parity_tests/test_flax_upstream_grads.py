"""Gradients of our flax layers equal flax's own autodiff bit for bit.

Our ``linen.RMSNorm`` (its default fields, ``spec=`` the ``flax`` preset, and
``intercept_norms``), ``nnx.RMSNorm`` (default, ``spec=``, ``replace_norms``) and
the functional on the ``flax`` preset are compared with ``flax.linen.RMSNorm`` /
``flax.nnx.RMSNorm``: ``y``, ``dx`` and ``dscale`` with ``jnp.array_equal``, in
float32, bfloat16 and float16, under ``jit``, ``grad``, ``vmap`` and ``remat``
(``shard_map``: ``test_flax_upstream_grads_sharded.py``). ``vjp="analytic"``
stays selectable and agrees within the tolerance table.
"""

from __future__ import annotations

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
# (shape, flax fields): the (2, 3, 8), two normalized axes with the scale
# over one of them, and a bfloat16 scale with flax's dtype= rounding the output
CASES = {
    "issue-2x3x8": ((2, 3, 8), {}),
    "axes12-feature2": ((3, 4, 10), {"reduction_axes": (1, 2), "feature_axes": 2}),
    "param-bf16-dtype-f32": ((5, 24), {"param_dtype": jnp.bfloat16, "dtype": jnp.float32}),
    "rows-6x40": ((6, 40), {}),
}


def _inputs(shape, dtype, scale_shape, param_dtype=jnp.float32):
    kx, ks, kd = jax.random.split(jax.random.key(len(shape) * 31 + shape[-1]), 3)
    x = (jax.random.normal(kx, shape) * 2).astype(dtype)
    scale = jax.random.uniform(ks, scale_shape, minval=0.5, maxval=1.5).astype(param_dtype)
    return x, scale, jax.random.normal(kd, shape)


def _linen_grads(module):
    """``(y, dx, dscale)`` of ``module`` under ``jit``, through ``jax.vjp``."""

    def run(x, scale, dy):
        y, pull = jax.vjp(lambda x, s: module.apply({"params": {"scale": s}}, x), x, scale)
        return (y, *pull(dy.astype(y.dtype)))

    return jax.jit(run)


def _nnx_grads(layer):
    """``(y, dx, dscale)`` of an nnx layer under ``nnx.jit``."""

    @nnx.jit
    def run(layer, x, dy):
        y, pull = jax.vjp(lambda m, x: m(x), layer, x)
        dm, dx = pull(dy.astype(y.dtype))
        return y, dx, dm.scale[...]

    return lambda x, dy: run(layer, x, dy)


def _assert_equal(got, expected):
    for name, a, b in zip(("y", "dx", "dscale"), got, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert bool(jnp.array_equal(a, b, equal_nan=True)), (
            f"{name}: {int(jnp.sum(a != b))} of {a.size} elements differ"
        )


def _flax_spec(fields):
    pdt = jnp.dtype(fields.get("param_dtype", jnp.float32)).name
    spec = RMSNormSpec.preset("flax", axes=fields.get("reduction_axes", -1), param_dtype=pdt)
    rest = {k: v for k, v in fields.items() if k not in ("reduction_axes", "param_dtype")}
    return spec, rest


def _grid(cases, hows):
    """Parametrize: every case made the first way, in each dtype; the other ways in the
    first case only (each runs the same functional: they differ in how a call reaches it)."""
    first, *rest = hows
    grid = [(c, first, d) for c in cases for d in DTYPES]
    grid += [(cases[0], h, d) for h in rest for d in DTYPES]
    return pytest.mark.parametrize("case, how, dtype", grid, ids=["-".join(g) for g in grid])


@_grid(["issue-2x3x8", "axes12-feature2", "param-bf16-dtype-f32"], ["fields", "spec", "intercept"])
def test_linen_gradients_are_flax_linen_s(case, how, dtype):
    shape, fields = CASES[case]
    theirs = fnn.RMSNorm(**fields)
    pshape = theirs.init(jax.random.key(0), jnp.ones(shape, dtype))["params"]["scale"].shape
    x, scale, dy = _inputs(shape, dtype, pshape, fields.get("param_dtype", jnp.float32))
    expected = _linen_grads(theirs)(x, scale, dy)
    if how == "intercept":
        with ours_linen.intercept_norms():
            got = _linen_grads(theirs)(x, scale, dy)
    elif how == "spec":
        spec, rest = _flax_spec(fields)
        got = _linen_grads(ours_linen.RMSNorm(spec=spec, **rest))(x, scale, dy)
    else:
        got = _linen_grads(ours_linen.RMSNorm(**fields))(x, scale, dy)
    _assert_equal(got, expected)


@_grid(["rows-6x40", "issue-2x3x8", "param-bf16-dtype-f32"], ["fields", "spec", "replace_norms"])
def test_nnx_gradients_are_flax_nnx_s(case, how, dtype):
    shape, fields = CASES[case]
    if how != "fields":  # spec= decides the dtypes: flax's dtype= is a field, not a spec
        fields = {k: v for k, v in fields.items() if k != "dtype"}
    n = shape[-1]
    x, scale, dy = _inputs(shape, dtype, (n,), fields.get("param_dtype", jnp.float32))
    theirs = nnx.RMSNorm(n, rngs=nnx.Rngs(0), **fields)
    theirs.scale[...] = scale
    expected = _nnx_grads(theirs)(x, dy)
    if how == "replace_norms":
        model = nnx.Sequential(nnx.RMSNorm(n, rngs=nnx.Rngs(0), **fields))
        model.layers[0].scale[...] = scale
        assert list(ours_nnx.replace_norms(model)) == ["layers.0"]
        ours = model.layers[0]
        assert isinstance(ours, ours_nnx.RMSNorm)
    elif how == "spec":
        spec, rest = _flax_spec(fields)
        ours = ours_nnx.RMSNorm(n, spec=spec, rngs=nnx.Rngs(0), **rest)
    else:
        ours = ours_nnx.RMSNorm(n, rngs=nnx.Rngs(0), **fields)
    ours.scale[...] = scale
    _assert_equal(_nnx_grads(ours)(x, dy), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_functional_on_the_flax_preset_has_flax_s_gradients(dtype):
    x, scale, dy = _inputs((3, 7, 12), dtype, (12,))
    expected = _linen_grads(fnn.RMSNorm(epsilon=1e-5))(x, scale, dy)
    spec = RMSNormSpec.preset("flax", eps=1e-5)

    def run(x, s, dy):
        y, pull = jax.vjp(lambda x, s: rms_norm(x, spec, s), x, s)
        return (y, *pull(dy.astype(y.dtype)))

    _assert_equal(jax.jit(run)(x, scale, dy), expected)


def _loss(apply):
    return lambda x, s, dy: jnp.sum(apply(x, s).astype(jnp.float32) * dy)


TRANSFORMS = {
    "grad": lambda loss: jax.jit(jax.grad(loss, argnums=(0, 1))),
    "remat": lambda loss: jax.jit(jax.grad(jax.checkpoint(loss), argnums=(0, 1))),
    "vmap": lambda loss: jax.jit(jax.vmap(jax.grad(loss, argnums=(0, 1)), in_axes=(0, None, 0))),
}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_gradients_equal_flax_s_under_each_transform(transform, dtype):
    shape = (4, 3, 20)  # vmap maps the leading axis
    x, scale, dy = _inputs(shape, dtype, (20,))
    theirs, ours = fnn.RMSNorm(), ours_linen.RMSNorm()
    wrap = TRANSFORMS[transform]
    expected = wrap(_loss(lambda x, s: theirs.apply({"params": {"scale": s}}, x)))(x, scale, dy)
    got = wrap(_loss(lambda x, s: ours.apply({"params": {"scale": s}}, x)))(x, scale, dy)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype and bool(jnp.array_equal(a, b))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_analytic_vjp_stays_selectable_and_close(dtype):
    x, scale, dy = _inputs((6, 40), dtype, (40,))
    spec = RMSNormSpec.preset("flax")
    exact = _linen_grads(ours_linen.RMSNorm())(x, scale, dy)
    fast = _linen_grads(ours_linen.RMSNorm(vjp="analytic"))(x, scale, dy)
    assert bool(jnp.array_equal(fast[0], exact[0]))  # the same forward
    plan = dtype_plan(spec, dtype)
    for name, a, b in zip(("dx", "dscale"), fast[1:], exact[1:], strict=True):
        key = plan.gradient_precision
        assert_close(np.asarray(a), np.asarray(b), key, gradient=True, name=name)
    layer = ours_nnx.RMSNorm(40, vjp="analytic", rngs=nnx.Rngs(0))
    layer.scale[...] = scale
    nnx_fast = _nnx_grads(layer)(x, dy)
    for a, b in zip(nnx_fast, fast, strict=True):
        assert bool(jnp.array_equal(a, b))


@pytest.mark.parametrize("make", ["functional", "linen", "nnx"])
def test_an_unknown_vjp_is_refused(make):
    x = jnp.ones((2, 8))
    match = r"vjp='fast' is not accepted; expected 'autodiff' .* or 'analytic'"
    with pytest.raises(RMSNormError, match=match):
        if make == "functional":
            rms_norm(x, RMSNormSpec.preset("flax"), jnp.ones(8), vjp="fast")
        elif make == "linen":
            ours_linen.RMSNorm(vjp="fast").init(jax.random.key(0), x)
        else:
            ours_nnx.RMSNorm(8, vjp="fast", rngs=nnx.Rngs(0))
