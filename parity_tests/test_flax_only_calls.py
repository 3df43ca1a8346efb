"""Calls flax's RMSNorm accepts that no spec describes: ours computes them as flax does.

An ``epsilon`` given as a JAX array or traced (the layer built inside ``jit``) or
one a spec refuses (negative, NaN, infinite, below float32's smallest normal),
integer, boolean and complex inputs, ``force_float32_reductions=False`` and
``reduction_axes=()`` or an axis named twice (``axis_index_groups``:
``test_flax_index_groups.py``): ``rmsnorm_flax.linen.RMSNorm`` and
``rmsnorm_flax.nnx.RMSNorm`` give ``flax.linen.RMSNorm``'s / ``flax.nnx.RMSNorm``'s
output dtype, values and gradients (``dx`` where ``x`` is inexact, ``dscale``)
bit for bit (``jnp.array_equal``). ``jax_enable_x64`` and ``vmap`` axis names:
``test_flax_only_calls_x64.py``.
"""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")
import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_core import RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402
from rmsnorm_flax.linen import intercept_norms  # noqa: E402

SHAPE = (2, 3, 8)


def _x(kind: str) -> jax.Array:
    base = jax.random.normal(jax.random.key(3), SHAPE) * 3
    if kind == "complex64":
        return (base + 1j * base[::-1]).astype(jnp.complex64)
    if kind == "bool":
        return base > 0
    return base.astype(kind)


def _cotangent(y: jax.Array) -> jax.Array:
    dy = jax.random.normal(jax.random.key(5), y.shape).astype(y.dtype)
    return dy + 1j * dy[::-1] if jnp.iscomplexobj(y) else dy


def _pull(f, x, scale):
    """``(y, dx, dscale)``: ``jax.vjp`` with a fixed cotangent; dx only for inexact x."""
    if jnp.issubdtype(x.dtype, jnp.inexact):
        y, pull = jax.vjp(f, x, scale)
        return (y, *pull(_cotangent(y)))
    y, pull = jax.vjp(lambda s: f(x, s), scale)
    return (y, None, *pull(_cotangent(y)))


def _assert_equal(got, want):
    for name, a, b in zip(("y", "dx", "dscale"), got, want, strict=True):
        if b is None:
            assert a is None, name
            continue
        assert a.dtype == b.dtype and a.shape == b.shape, (name, a.dtype, b.dtype)
        assert bool(jnp.array_equal(a, b, equal_nan=True)), (
            f"{name}: {int(jnp.sum(a != b))} of {a.size} elements differ"
        )


# (id, input kind, flax fields): each one call no spec describes
LINEN_CASES = [
    ("eps-array-f32", "float32", {"epsilon": jnp.float32(1e-2)}),
    ("eps-array-bf16", "bfloat16", {"epsilon": jnp.bfloat16(1e-2)}),
    ("int32", "int32", {}),
    ("int8-dtype-bf16", "int8", {"dtype": jnp.bfloat16}),
    ("int32-param-bf16", "int32", {"param_dtype": jnp.bfloat16}),
    ("bool", "bool", {}),
    ("complex64", "complex64", {}),
    ("complex64-no-scale", "complex64", {"use_scale": False}),
    ("f32-in-complex-dtype", "float32", {"dtype": jnp.complex64}),
    ("force32-false-f32", "float32", {"force_float32_reductions": False}),
    ("force32-false-bf16", "bfloat16", {"force_float32_reductions": False}),
    ("force32-false-f16", "float16", {"force_float32_reductions": False}),
    (
        "force32-false-bf16-no-scale",
        "bfloat16",
        {"force_float32_reductions": False, "use_scale": False},
    ),
    (
        "force32-false-f16-dtype-bf16",
        "float16",
        {"force_float32_reductions": False, "dtype": jnp.bfloat16},
    ),
    ("axes-empty", "float32", {"reduction_axes": ()}),
    ("axes-empty-bf16", "bfloat16", {"reduction_axes": ()}),
    ("axes-1-1", "float32", {"reduction_axes": (1, 1)}),
    ("axes-minus1-2", "float16", {"reduction_axes": (-1, 2), "feature_axes": (2, -1)}),
    ("eps-negative", "float32", {"epsilon": -1e-6}),
    ("eps-minus-half-bf16", "bfloat16", {"epsilon": -0.5}),
    ("eps-nan", "float32", {"epsilon": float("nan")}),
    ("eps-inf-f16", "float16", {"epsilon": float("inf")}),
    ("eps-below-f32-normal", "float32", {"epsilon": 1e-40}),
    ("f32-param-complex64", "float32", {"param_dtype": jnp.complex64}),
    ("bf16-param-complex64", "bfloat16", {"param_dtype": jnp.complex64}),
    ("complex64-param-complex64", "complex64", {"param_dtype": jnp.complex64}),
]


def _linen_pair(kind, fields, ours_cls=ours_linen.RMSNorm):
    x = _x(kind)
    theirs = fnn.RMSNorm(**fields)
    # the parameters' shapes and dtypes only (traced, not run: flax's eager init costs
    # ~0.5 s a case here); test_linen_init_makes_flaxs_params runs both inits
    params = jax.eval_shape(theirs.init, jax.random.key(0), x).get("params", {})
    scale = None
    if "scale" in params:
        scale = jax.random.uniform(jax.random.key(1), params["scale"].shape, minval=0.5, maxval=1.5)
        scale = scale.astype(params["scale"].dtype)
    return x, scale, theirs, ours_cls(**fields)


def _variables(scale):
    return {"params": {} if scale is None else {"scale": scale}}


@pytest.fixture(scope="module")
def linen_results():
    """Case id -> ``((y, dx, dscale) ours, flax's)``: every case's two calls under ONE
    jit (XLA's compilation costs ~0.9 s a program here whatever its size: 26 cases took
    36 s in a jit each, 5.5 s together). Each case's ops are its own; the two sides of a
    case are compiled alike, as in a jit of their own."""
    pairs = [_linen_pair(kind, fields) for _, kind, fields in LINEN_CASES]

    def run(module, x, s):
        return _pull(lambda x, s: module.apply({"params": {"scale": s}}, x), x, s)

    def every(xs, scales):
        return [
            (run(ours, x, s), run(theirs, x, s))
            for x, s, (_, _, theirs, ours) in zip(xs, scales, pairs, strict=True)
        ]

    results = jax.jit(every)([p[0] for p in pairs], [p[1] for p in pairs])
    return {case[0]: result for case, result in zip(LINEN_CASES, results, strict=True)}


@pytest.mark.parametrize("case", [c[0] for c in LINEN_CASES])
def test_linen_matches_flax(linen_results, case):
    _assert_equal(*linen_results[case])


@pytest.mark.parametrize(
    "kind,fields", [c[1:] for c in LINEN_CASES], ids=[c[0] for c in LINEN_CASES]
)
def test_linen_init_makes_flaxs_params(kind, fields):
    x, _, theirs, ours = _linen_pair(kind, fields)
    want, got = theirs.init(jax.random.key(0), x), ours.init(jax.random.key(0), x)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), got) == jax.tree.map(
        lambda a: (a.shape, a.dtype), want
    )


@pytest.mark.parametrize(
    "kind,fields", [c[1:] for c in LINEN_CASES], ids=[c[0] for c in LINEN_CASES]
)
def test_intercept_norms_leaves_them_to_flax(kind, fields):
    x, scale, theirs, _ = _linen_pair(kind, fields)
    want = theirs.apply(_variables(scale), x)
    with intercept_norms():
        got = theirs.apply(_variables(scale), x)
    _assert_equal((got, None, None), (want, None, None))


@pytest.mark.parametrize("api", ["linen", "nnx"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_traced_epsilon_matches_flax(api, dtype):
    # the layer is built inside the jitted function from a traced epsilon
    x, scale = _x(dtype), jax.random.uniform(jax.random.key(1), (8,), minval=0.5, maxval=1.5)

    def pulled(cls, eps, x, scale):
        def norm(x, s):
            if api == "linen":
                return cls(epsilon=eps).apply({"params": {"scale": s}}, x)
            layer = cls(8, epsilon=eps, rngs=nnx.Rngs(0))
            layer.scale[...] = s
            return layer(x)

        return _pull(norm, x, scale)

    pairs = {"linen": (fnn.RMSNorm, ours_linen.RMSNorm), "nnx": (nnx.RMSNorm, ours_nnx.RMSNorm)}
    theirs, ours = pairs[api]
    # both sides under one jit (one compilation), each built from the traced epsilon
    both = jax.jit(lambda e, x, s: (pulled(ours, e, x, s), pulled(theirs, e, x, s)))
    _assert_equal(*both(1e-2, x, scale))


# (id, input kind, flax nnx constructor fields)
NNX_CASES = [
    ("eps-array", "float32", {"epsilon": jnp.float32(1e-2)}),
    ("int32", "int32", {}),
    ("complex64", "complex64", {}),
    ("complex64-dtype", "float32", {"dtype": jnp.complex64}),
    ("axes-empty", "bfloat16", {"reduction_axes": ()}),
    ("axes-2-2", "float32", {"reduction_axes": (2, 2)}),
    ("axes-minus1-2", "float16", {"reduction_axes": (-1, 2)}),
    ("eps-negative", "float32", {"epsilon": -1e-6}),
    ("eps-minus-half-bf16", "bfloat16", {"epsilon": -0.5}),
    ("f32-param-complex64", "float32", {"param_dtype": jnp.complex64}),
    ("bf16-param-complex64", "bfloat16", {"param_dtype": jnp.complex64}),
]


def _nnx_grads(layer, x):
    if jnp.issubdtype(x.dtype, jnp.inexact):
        y, pull = jax.vjp(lambda m, x: m(x), layer, x)
        dm, dx = pull(_cotangent(y))
    else:
        y, pull = jax.vjp(lambda m: m(x), layer)
        (dm,), dx = pull(_cotangent(y)), None
    return y, dx, dm.scale[...]


@pytest.fixture(scope="module")
def nnx_results():
    """Case id -> ``(ours, flax's)`` for the nnx layers, every case through ONE
    ``nnx.jit`` (as ``linen_results``)."""
    scale = jax.random.uniform(jax.random.key(1), (8,), minval=0.5, maxval=1.5)

    def layer(cls, fields):
        layer = cls(8, rngs=nnx.Rngs(0), **fields)
        layer.scale[...] = scale.astype(layer.scale[...].dtype)
        return layer

    layers = [(layer(ours_nnx.RMSNorm, f), layer(nnx.RMSNorm, f)) for _, _, f in NNX_CASES]
    xs = [_x(kind) for _, kind, _ in NNX_CASES]

    def every(layers, xs):
        return [(_nnx_grads(a, x), _nnx_grads(b, x)) for (a, b), x in zip(layers, xs, strict=True)]

    results = nnx.jit(every)(layers, xs)
    return {case[0]: result for case, result in zip(NNX_CASES, results, strict=True)}


@pytest.mark.parametrize("case", [c[0] for c in NNX_CASES])
def test_nnx_matches_flax(nnx_results, case):
    _assert_equal(*nnx_results[case])


def test_nnx_layer_no_spec_describes_reads_flaxs_fields_and_has_no_checkpoint_form():
    from rmsnorm_flax.interop import _bridge

    eps = jnp.float32(1e-2)
    layer = ours_nnx.RMSNorm(8, epsilon=eps, reduction_axes=(), rngs=nnx.Rngs(0))
    assert layer.epsilon is eps and layer.reduction_axes == () and layer.feature_axes == -1
    with pytest.raises(
        RMSNormError, match=r"layer '': epsilon of type ArrayImpl: no spec describes"
    ):
        _bridge._nnx_norms(layer, flax_too=False)


@pytest.mark.parametrize(
    "fields,why",
    [({"reduction_axes": ()}, "reduction_axes=()"), ({"epsilon": jnp.array(0.1)}, "epsilon of")],
    ids=["axes-empty", "eps-array"],
)
def test_replace_norms_skips_a_flax_layer_no_spec_describes(fields, why):
    model = nnx.Sequential(nnx.RMSNorm(8, rngs=nnx.Rngs(0), **fields))
    report = ours_nnx.replace_norms(model)
    assert not report and isinstance(model.layers[0], nnx.RMSNorm)
    assert any(f"{why}" in w and "no spec describes" in w for w in report.skipped.values()), (
        report.skipped
    )


@pytest.mark.parametrize(
    "fields,match",
    [
        ({"force_float32_reductions": False}, r"force_float32_reductions=False with spec="),
        ({"epsilon": jnp.float32(1e-2)}, r"epsilon=Array\(0\.01.*\(the spec has 1e-06\) conflict"),
        ({"reduction_axes": ()}, r"reduction_axes=\(\) \(the spec has \(-1,\)\) conflict"),
        ({"epsilon": -1e-6}, r"epsilon=-1e-06 \(the spec has 1e-06\) conflict"),
    ],
    ids=["force32-false", "eps-array", "axes-empty", "eps-negative"],
)
def test_with_spec_they_are_refused(fields, match):
    # spec= decides the semantics; it holds a Python-number eps and distinct axes
    m = ours_linen.RMSNorm(spec=RMSNormSpec.preset("flax"), **fields)
    with pytest.raises(RMSNormError, match=match):
        m.init(jax.random.key(0), jnp.ones(SHAPE))


def test_traced_epsilon_with_spec_is_refused_by_name():
    def f(eps, x):
        m = ours_linen.RMSNorm(epsilon=eps, spec=RMSNormSpec.preset("flax"))
        return m.init_with_output(jax.random.key(0), x)[0]

    with pytest.raises(RMSNormError, match=r"epsilon=.*Tracer.* with spec= is not accepted"):
        jax.jit(f)(1e-2, jnp.ones(SHAPE))
