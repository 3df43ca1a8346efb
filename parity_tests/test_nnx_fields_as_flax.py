"""``rmsnorm_flax.nnx.RMSNorm`` keeps flax.nnx.RMSNorm's fields as flax does: each reads
back flax's value, an array ``epsilon`` is state under flax's key ``epsilon`` (so
``nnx.update``/``nnx.merge`` move state between flax's layer and ours, either way),
and an assignment flax accepts is accepted with flax's results (flax reads its fields
at each call), one flax refuses refused alike. Compared with flax's own layer, built
and changed the same way; outputs and gradients with ``jnp.array_equal``."""

from __future__ import annotations

import dataclasses

import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_flax import nnx as ours  # noqa: E402

#: every field flax.nnx.RMSNorm might expose (those it does not: absent from ours too)
NAMES = (
    "num_features", "epsilon", "dtype", "param_dtype", "use_scale", "scale_init",
    "reduction_axes", "feature_axes", "axis_name", "axis_index_groups", "use_fast_variance",
    "force_float32_reductions", "promote_dtype", "scale",
)  # fmt: skip

BUILDS = {
    "default": {},
    "eps-float": {"epsilon": 1e-3},
    "eps-array": {"epsilon": jnp.array(1e-3)},
    "eps-array-bf16": {"epsilon": jnp.bfloat16(1e-2)},
    "axes-tuple": {"reduction_axes": (-1,), "feature_axes": (-1,)},
    "axes-empty": {"reduction_axes": ()},
    "param-bf16": {"param_dtype": jnp.bfloat16},
    "param-complex64": {"param_dtype": jnp.complex64},
    "no-scale": {"use_scale": False},
    "dtype-bf16": {"dtype": jnp.bfloat16, "use_fast_variance": False},
    "axis-name": {"axis_name": "batch", "axis_index_groups": [[0]]},
}
X = jax.random.normal(jax.random.key(0), (2, 3, 4)) * 3


def _pair(build):
    fields = BUILDS[build]
    return nnx.RMSNorm(4, rngs=nnx.Rngs(0), **fields), ours.RMSNorm(4, rngs=nnx.Rngs(0), **fields)


def _same(a, b) -> bool:
    if isinstance(b, nnx.Variable):
        return type(a) is type(b) and _same(a[...], b[...])
    if isinstance(b, jax.Array):
        return isinstance(a, jax.Array) and a.dtype == b.dtype and bool(jnp.array_equal(a, b))
    return type(a) is type(b) and a == b


def _results(m, jit=True):
    """``(y, dx, dscale)`` eagerly and (given ``jit``) ``y`` under ``nnx.jit``."""
    ct = jax.random.normal(jax.random.key(1), X.shape)
    y, pull = jax.vjp(lambda x: m(x), X)
    (dx,) = pull(ct.astype(y.dtype))
    dscale = None
    if m.scale is not None:
        grads = nnx.grad(lambda m: jnp.sum(jnp.real(m(X)) * ct))(m)
        dscale = grads.scale[...]
    return y, dx, dscale, nnx.jit(lambda m, x: m(x))(m, X) if jit else None


def _assert_same_results(got, want):
    for name, a, b in zip(("y", "dx", "dscale", "y-jit"), got, want, strict=True):
        if b is None:
            assert a is None, name
        else:
            assert a.dtype == b.dtype and bool(jnp.array_equal(a, b, equal_nan=True)), name


@pytest.mark.parametrize("build", list(BUILDS))
def test_fields_read_back_as_flaxs(build):
    theirs, mine = _pair(build)
    for name in NAMES:
        assert hasattr(mine, name) == hasattr(theirs, name), name
        if hasattr(theirs, name):
            assert _same(getattr(mine, name), getattr(theirs, name)), (name, getattr(mine, name))


@pytest.mark.parametrize("build", [b for b in BUILDS if b != "axis-name"])
def test_state_moves_between_flaxs_layer_and_ours(build):
    theirs, mine = _pair(build)
    want = nnx.to_flat_state(nnx.state(theirs))
    got = nnx.to_flat_state(nnx.state(mine))
    assert [k for k, _ in got] == [k for k, _ in want]
    assert all(_same(a, b) for (_, a), (_, b) in zip(got, want, strict=True))
    if theirs.scale is not None:  # values ours does not start with
        theirs.scale[...] = (theirs.scale[...] * 1.5 + 0.25).astype(theirs.scale[...].dtype)
    if isinstance(theirs.epsilon, jax.Array):
        theirs.epsilon = theirs.epsilon * 3
    nnx.update(mine, nnx.state(theirs))
    _assert_same_results(_results(mine), _results(theirs))
    want = _results(theirs, jit=False)
    merged = nnx.merge(nnx.graphdef(mine), nnx.state(theirs))
    _assert_same_results(_results(merged, jit=False), want)
    back = nnx.merge(nnx.graphdef(theirs), nnx.state(mine))
    _assert_same_results(_results(back, jit=False), want)
    fresh = nnx.RMSNorm(4, rngs=nnx.Rngs(5), **BUILDS[build])
    nnx.update(fresh, nnx.state(mine))
    _assert_same_results(_results(fresh, jit=False), want)


# (build, field, value assigned after construction)
ASSIGN = [
    ("eps-array", "epsilon", jnp.array(0.5)),
    ("eps-array", "epsilon", 0.25),
    ("eps-array-bf16", "epsilon", -0.5),
    ("default", "epsilon", 0.25),
    ("default", "epsilon", -1e-6),
    ("default", "epsilon", jnp.array(0.5)),  # flax refuses: a static field takes no array
    ("default", "epsilon", nnx.data(jnp.array(0.5))),  # unless marked as data
    ("default", "reduction_axes", (1, 2)),
    ("default", "reduction_axes", ()),
    ("axes-empty", "reduction_axes", -1),
    ("default", "feature_axes", (-1,)),
    ("default", "dtype", jnp.bfloat16),
    ("default", "param_dtype", jnp.bfloat16),
    ("default", "use_scale", False),
    ("default", "use_fast_variance", False),
    ("param-complex64", "epsilon", 0.5),
    ("no-scale", "epsilon", 0.5),
    ("default", "scale", nnx.Param(jnp.linspace(0.5, 1.5, 4, dtype=jnp.bfloat16))),
    ("eps-array", "scale", nnx.Param(jnp.linspace(0.5, 1.5, 4))),
]


def _id(build, name, value) -> str:
    if isinstance(value, nnx.Variable):
        value = f"param-{value[...].dtype}"
    elif isinstance(value, dataclasses.Field):  # nnx.data(...)
        value = f"data-array-{value.metadata['nnx_value']}"
    elif isinstance(value, jax.Array):
        value = f"array-{value}"
    elif isinstance(value, type):
        value = value.__name__
    return f"{build}-{name}-{value}".replace(" ", "")


@pytest.mark.parametrize("build,name,value", ASSIGN, ids=[_id(*a) for a in ASSIGN])
def test_an_assignment_acts_as_on_flaxs_layer(build, name, value):
    theirs, mine = _pair(build)
    try:
        setattr(theirs, name, value)
    except Exception as err:  # noqa: BLE001 (flax's refusal, whatever its type)
        with pytest.raises(type(err)):
            setattr(mine, name, value)
        _assert_same_results(_results(mine), _results(theirs))  # ours left unchanged too
        return
    setattr(mine, name, value)
    assert _same(getattr(mine, name), getattr(theirs, name))
    assert jax.tree.structure(nnx.state(mine)) == jax.tree.structure(nnx.state(theirs))
    _assert_same_results(_results(mine), _results(theirs))
