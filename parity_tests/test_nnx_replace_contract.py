"""``rmsnorm_flax.nnx.replace_norms`` keeps the model's contract (as the torch one does):
affine-free norms, shared modules, state paths, probes that touch no state, bounded
probes, and a report of what was left in place and why."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_flax import nnx as ours_nnx  # noqa: E402

X = jax.random.normal(jax.random.key(0), (3, 8)) * 2


class Model(nnx.Module):
    def __init__(self, rngs):
        shared = nnx.RMSNorm(8, rngs=rngs)
        self.first = shared
        self.second = shared
        self.free = nnx.RMSNorm(8, use_scale=False, rngs=rngs)
        self.bn = nnx.BatchNorm(8, use_running_average=False, rngs=rngs)
        self.blocks = nnx.List([nnx.RMSNorm(8, rngs=rngs)])

    def __call__(self, x):
        x = self.second(self.first(x))
        return self.blocks[0](self.bn(self.free(x)))


def _state(model):
    return {k: np.asarray(v[...]) for k, v in nnx.to_flat_state(nnx.state(model))}


def test_replaces_shared_and_affine_free_norms_and_keeps_state_paths():
    model = Model(nnx.Rngs(0))
    model.first.scale[...] = jnp.linspace(0.5, 1.5, 8)
    expected, before = model(X), _state(nnx.clone(model))
    scale = model.first.scale
    report = ours_nnx.replace_norms(model)
    assert sorted(report) == ["blocks.0", "first", "free", "second"]
    assert model.first is model.second and isinstance(model.first, ours_nnx.RMSNorm)
    assert model.first.scale is scale and isinstance(model.free, ours_nnx.RMSNorm)
    assert "bn" in report.skipped and "that ours would not keep" in report.skipped["bn"]
    after = _state(model)
    assert sorted(after) == sorted(before)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # probes changed nothing
    np.testing.assert_array_equal(model(X), expected)


class CountingNorm(nnx.Module):
    """A "norm" with a variable ours would not keep."""

    def __init__(self):
        self.scale = nnx.Param(jnp.ones(8))
        self.calls = nnx.Variable(jnp.zeros(()))

    def __call__(self, x):
        self.calls[...] += 1
        return x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6) * self.scale[...]


class Holder(nnx.Module):
    def __init__(self, norm):
        self.norm = norm


def test_a_norm_with_other_state_is_left_in_place_unprobed():
    model = Holder(CountingNorm())
    report = ours_nnx.replace_norms(model)
    assert dict(report) == {} and "calls" in report.skipped["norm"]
    assert isinstance(model.norm, CountingNorm) and float(model.norm.calls[...]) == 0


class NormHead(nnx.Module):
    """Baichuan's head: a [vocab, hidden] weight normalized per row."""

    def __init__(self):
        self.scale = nnx.Param(jnp.ones((1024, 4096)))

    def __call__(self, x):
        w = self.scale[...]
        return x @ (w / jnp.linalg.norm(w, axis=-1, keepdims=True)).T


def test_a_16_mb_norm_head_is_refused_before_any_probe():
    model = Holder(NormHead())
    report = ours_nnx.replace_norms(model)
    assert dict(report) == {} and "elements" in report.skipped["norm"]
