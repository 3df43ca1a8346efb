"""``rmsnorm_flax.nnx.RMSNorm`` built with ``spec=`` reads its flax fields from the spec
and refuses to change them: the spec holds them, so an assignment would otherwise be
ignored silently (a wrong result). Without ``spec=`` an assignment acts as on flax's
layer: ``test_nnx_fields_as_flax.py``."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_core import RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_flax import nnx as ours  # noqa: E402


def test_with_spec_the_fields_read_the_spec_and_refuse_assignment():
    spec = RMSNormSpec.preset("flax", eps=1e-3, axes=(-1,))
    m = ours.RMSNorm(4, spec=spec, rngs=nnx.Rngs(0))
    assert m.epsilon == spec.eps and m.reduction_axes == spec.axes and m.feature_axes == (-1,)
    x = jnp.full((1, 4), 0.1)
    before = m(x)
    for name, value in (
        ("epsilon", 1.0),
        ("reduction_axes", (0, 1)),
        ("feature_axes", (0,)),
        ("axis_index_groups", [[0]]),
    ):
        with pytest.raises(RMSNormError, match=rf"{name}=.* built with spec= is fixed"):
            setattr(m, name, value)
    assert m.epsilon == spec.eps and jnp.array_equal(m(x), before)
    graph, state = nnx.split(m)  # the module still splits and merges as flax's
    assert jnp.array_equal(nnx.merge(graph, state)(x), before)
