"""``rmsnorm_flax.nnx.RMSNorm`` reads flax's fields and refuses to change the ones its spec
holds: flax reads ``epsilon``/``reduction_axes``/``feature_axes`` at each call, ours built
them into the spec, so an assignment was ignored silently (a wrong result)."""

from __future__ import annotations

import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_core import RMSNormError  # noqa: E402
from rmsnorm_flax import nnx as ours  # noqa: E402


def test_flax_fields_read_as_flax_and_refuse_assignment():
    m = ours.RMSNorm(4, epsilon=1e-3, rngs=nnx.Rngs(0))
    assert m.epsilon == 1e-3 and m.reduction_axes == (-1,) and m.feature_axes == (-1,)
    x = jnp.full((1, 4), 0.1)
    before = m(x)
    for name, value in (("epsilon", 1.0), ("reduction_axes", (0, 1)), ("feature_axes", (0,))):
        with pytest.raises(RMSNormError, match=rf"{name}=.*is fixed when it is built"):
            setattr(m, name, value)
    assert jnp.array_equal(m(x), before)
    graph, state = nnx.split(m)  # the module still splits and merges as flax's
    assert jnp.array_equal(nnx.merge(graph, state)(x), before)
