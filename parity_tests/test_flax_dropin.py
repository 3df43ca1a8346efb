"""rmsnorm_flax.linen / .nnx RMSNorm as drop-ins for flax's own, with copied params."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
fnn = pytest.importorskip("flax.linen")
from flax import nnx  # noqa: E402

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError, assert_close, dtype_name  # noqa: E402
from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402

DTYPES = ["float32", "bfloat16", "float16"]
LINEN_CONFIGS = [
    ("default", (4, 7, 64), {}),
    ("eps", (3, 48), {"epsilon": 1e-5}),
    ("no-scale", (3, 48), {"use_scale": False}),
    ("out-dtype", (3, 48), {"dtype": jnp.bfloat16}),
    ("param-bf16", (3, 48), {"param_dtype": jnp.bfloat16}),
    ("two-axes", (2, 5, 6, 8), {"reduction_axes": (-2, -1), "feature_axes": (-2, -1)}),
    ("reduce-2-scale-1", (2, 5, 6, 8), {"reduction_axes": (-2, -1)}),
    ("nhwc-c", (2, 5, 5, 16), {"reduction_axes": 3, "feature_axes": 3}),
]


def _compare(ours, theirs, key, name):
    assert ours.dtype == theirs.dtype, f"{name}: {ours.dtype} != {theirs.dtype}"
    assert_close(np.asarray(ours), np.asarray(theirs), key, name=name)


def _key(x_dtype, y_dtype):
    return min((dtype_name(x_dtype), dtype_name(y_dtype)), key=lambda n: jnp.finfo(n).nmant)


LINEN_CASES = [(d, c) for d in DTYPES for c in LINEN_CONFIGS]


def test_force_float32_reductions_false_with_spec_is_refused_not_mapped():
    # flax then takes the mean square in the input dtype and normalizes in float32;
    # compute_dtype="input" (every step rounded) differs in 97% of bf16 outputs, so with
    # spec= the field is refused rather than mapped to a spec that computes something
    # else (without spec= it is flax's own computation: test_flax_only_calls.py)
    x = jnp.ones((3, 48), jnp.bfloat16)
    m = ours_linen.RMSNorm(force_float32_reductions=False, spec=RMSNormSpec.preset("flax"))
    with pytest.raises(
        RMSNormError, match=r"force_float32_reductions=False with spec= is not supported"
    ):
        m.init(jax.random.key(0), x)


@pytest.mark.parametrize(
    "dtype,config", LINEN_CASES, ids=[f"linen-{d}-{c[0]}" for d, c in LINEN_CASES]
)
def test_linen_equals_flax(dtype, config):
    cid, shape, kwargs = config
    x = (jax.random.normal(jax.random.key(0), shape) * 3).astype(dtype)
    theirs, ours = fnn.RMSNorm(**kwargs), ours_linen.RMSNorm(**kwargs)
    params = theirs.init(jax.random.key(1), x)
    params = jax.tree.map(
        lambda p: p * jax.random.uniform(jax.random.key(2), p.shape, p.dtype, 0.5, 1.5), params
    )
    assert jax.tree.structure(ours.init(jax.random.key(1), x)) == jax.tree.structure(params)
    y_ours, y_theirs = jax.jit(ours.apply)(params, x), jax.jit(theirs.apply)(params, x)
    _compare(y_ours, y_theirs, _key(x.dtype, y_theirs.dtype), f"linen {cid} {dtype}")
    dy = jax.random.normal(jax.random.key(3), shape).astype(y_theirs.dtype)
    g_ours = jax.vjp(ours.apply, params, x)[1](dy)
    g_theirs = jax.vjp(theirs.apply, params, x)[1](dy)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_theirs), strict=True):
        assert_close(
            np.asarray(a),
            np.asarray(b),
            _key(x.dtype, a.dtype),
            gradient=True,
            name=f"linen grad {cid}",
        )


def _to_float32(args, *, dtype=None, inexact=True):
    """A custom promote_dtype: everything to float32, whatever ``dtype`` says."""
    return tuple(None if a is None else jnp.asarray(a, jnp.float32) for a in args)


NNX_CONFIGS = [
    ("default", (4, 7, 64), {}),
    ("eps", (3, 48), {"epsilon": 1e-5}),
    ("dtype-bf16", (3, 48), {"dtype": jnp.bfloat16}),
    ("no-scale", (3, 48), {"use_scale": False}),
    ("promote-f32", (3, 48), {"promote_dtype": _to_float32}),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cid,shape,kwargs", NNX_CONFIGS, ids=[c[0] for c in NNX_CONFIGS])
def test_nnx_equals_flax(dtype, cid, shape, kwargs):
    x = (jax.random.normal(jax.random.key(0), shape) * 3).astype(dtype)
    theirs = nnx.RMSNorm(shape[-1], rngs=nnx.Rngs(0), **kwargs)
    ours = ours_nnx.RMSNorm(shape[-1], rngs=nnx.Rngs(0), **kwargs)
    if theirs.scale is not None:
        theirs.scale[...] = jax.random.uniform(
            jax.random.key(2), (shape[-1],), minval=0.5, maxval=1.5
        )
        nnx.update(ours, nnx.state(theirs))  # flax's state loads unchanged
    y_ours, y_theirs = ours(x), theirs(x)
    _compare(y_ours, y_theirs, _key(x.dtype, y_theirs.dtype), f"nnx {cid} {dtype}")


def test_linen_spec_decides_and_gemma_initializes_to_identity():
    spec = RMSNormSpec.preset("gemma", axes=(1,), use_bias=True)
    m = ours_linen.RMSNorm(spec=spec)
    v = m.init(jax.random.key(0), jnp.ones((2, 8, 3, 3)))
    assert v["params"]["scale"].shape == (8,) and np.all(np.asarray(v["params"]["scale"]) == 0)
    assert v["params"]["bias"].shape == (8,)
    x = jax.random.normal(jax.random.key(1), (2, 8, 3, 3))
    expected = x / jnp.sqrt(jnp.mean(x * x, axis=1, keepdims=True) + 1e-6)
    assert_close(np.asarray(m.apply(v, x)), np.asarray(expected), "float32", name="gemma identity")


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (
            {"epsilon": 1e-5, "spec": RMSNormSpec()},
            RMSNormError,
            r"epsilon=1e-05 \(the spec has 1e-06\) conflict with spec=",
        ),
        (
            {"reduction_axes": 1, "spec": RMSNormSpec()},
            RMSNormError,
            r"reduction_axes=1 \(the spec has \(-1,\)\)",
        ),
        (
            {"use_scale": False, "spec": RMSNormSpec()},
            RMSNormError,
            r"use_scale=False \(the spec has True\)",
        ),
        ({"spec": "llama"}, RMSNormTypeError, r"spec must be an RMSNormSpec, got str"),
        (  # without spec= it computes as flax's (test_flax_index_groups.py)
            {"axis_index_groups": [[0, 1]], "spec": RMSNormSpec()},
            RMSNormError,
            r"axis_index_groups=\(\(0, 1\),\) is not supported with spec=",
        ),
        (
            {"feature_axes": 3},
            RMSNormError,
            r"feature_axes=\(3,\) is out of range for an input of rank 2; each axis must "
            r"satisfy -2 <= axis < 2",
        ),
        (  # without spec= it computes as flax's (test_flax_only_calls.py)
            {"epsilon": -1.0, "spec": RMSNormSpec()},
            RMSNormError,
            r"epsilon=-1\.0 \(the spec has 1e-06\) conflict with spec=",
        ),
    ],
    ids=[
        "eps-conflict",
        "axes-conflict",
        "scale-conflict",
        "spec-str",
        "index-groups",
        "feature-out-of-range",
        "eps-negative",
    ],
)
def test_linen_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ours_linen.RMSNorm(**kwargs).init(jax.random.key(0), jnp.ones((2, 8)))


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_residual_modules(api):
    spec = RMSNormSpec(residual_dtype="float32")
    x = jax.random.normal(jax.random.key(0), (3, 16)).astype(jnp.bfloat16)
    r = jax.random.normal(jax.random.key(1), (3, 16)).astype(jnp.bfloat16)
    if api == "linen":
        m = ours_linen.ResidualRMSNorm(spec=spec)
        (y, s), v = m.init_with_output(jax.random.key(0), x, r)
        plain = ours_linen.RMSNorm(spec=spec).apply(v, s)
    else:
        m = ours_nnx.ResidualRMSNorm(16, spec=spec, rngs=nnx.Rngs(0))
        y, s = m(x, r)
        plain = ours_nnx.RMSNorm(16, spec=spec, rngs=nnx.Rngs(0))(s)
    assert s.dtype == jnp.float32 and y.dtype == jnp.bfloat16
    assert np.array_equal(np.asarray(y), np.asarray(plain.astype(jnp.bfloat16)))


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_residual_dtype_rounds_once_as_the_plain_module_does(api):
    # dtype=float32 on bfloat16 input: the output comes from the float32 computation,
    # never from a bfloat16 output widened afterwards
    spec = RMSNormSpec()
    x = jax.random.normal(jax.random.key(0), (3, 16)).astype(jnp.bfloat16)
    r = jax.random.normal(jax.random.key(1), (3, 16)).astype(jnp.bfloat16)
    if api == "linen":
        m = ours_linen.ResidualRMSNorm(spec=spec, dtype=jnp.float32)
        (y, s), v = m.init_with_output(jax.random.key(0), x, r)
        plain = ours_linen.RMSNorm(spec=spec, dtype=jnp.float32).apply(v, s)
    else:
        kw = {"spec": spec, "dtype": jnp.float32, "rngs": nnx.Rngs(0)}
        y, s = ours_nnx.ResidualRMSNorm(16, **kw)(x, r)
        plain = ours_nnx.RMSNorm(16, **kw)(s)
    assert y.dtype == plain.dtype == jnp.float32
    assert np.array_equal(np.asarray(y), np.asarray(plain))
    widened = np.asarray(y.astype(jnp.bfloat16).astype(jnp.float32))
    assert not np.array_equal(np.asarray(y), widened)  # float32 values, not bfloat16 ones


def test_nnx_takes_every_argument_flax_takes():
    import inspect

    theirs = set(inspect.signature(nnx.RMSNorm.__init__).parameters)
    ours = set(inspect.signature(ours_nnx.RMSNorm.__init__).parameters)
    assert theirs <= ours, theirs - ours


@pytest.mark.parametrize("dtype", DTYPES)
def test_epsilon_zero_is_flaxs(dtype):
    # flax accepts epsilon=0: a row of zeros then gives NaN (issue 21 item 2), bit for bit
    x = (jax.random.normal(jax.random.key(0), (4, 32)) * 3).astype(dtype).at[0].set(0)
    theirs, ours = fnn.RMSNorm(epsilon=0.0), ours_linen.RMSNorm(epsilon=0.0)
    params = theirs.init(jax.random.key(1), x)
    want, got = jax.jit(theirs.apply)(params, x), jax.jit(ours.apply)(params, x)
    assert np.isnan(np.asarray(got[0], np.float32)).all()
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # NaNs at the same places
