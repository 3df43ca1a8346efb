"""Differentiation everywhere it is asked for: forward mode in JAX, empty blocks, and
zero rows with eps outside the root (the spec: the gradient of sqrt at 0 is taken as 0)."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
import jax.numpy as jnp  # noqa: E402

from rmsnorm_core import RMSNormSpec, reference  # noqa: E402
from rmsnorm_flax import rms_norm as flax_rms_norm  # noqa: E402
from rmsnorm_torch import RMSNorm  # noqa: E402

FORWARD_SPECS = ["gemma", "llama", "paper"]


@pytest.mark.parametrize("preset", FORWARD_SPECS)
def test_jax_forward_mode_equals_reverse_mode(preset):
    spec = RMSNormSpec.preset(preset, use_bias=True)
    x = jax.random.normal(jax.random.key(0), (3, 16))
    s, b = jnp.linspace(0.5, 1.5, 16), jnp.linspace(-0.1, 0.1, 16)

    def f(x, s, b):
        return flax_rms_norm(x, spec, s, b)

    rev = jax.jacrev(f, argnums=(0, 1, 2))(x, s, b)
    for fwd in (jax.jacfwd(f, argnums=(0, 1, 2)), jax.jit(jax.jacfwd(f, argnums=(0, 1, 2)))):
        for a, r in zip(fwd(x, s, b), rev, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(r), rtol=1e-5, atol=1e-6)
    tangents = (jnp.ones_like(x), jnp.ones_like(s), jnp.ones_like(b))
    _, t = jax.jvp(f, (x, s, b), tangents)
    expected = sum(
        jnp.einsum("ijk...,k...->ij", r, tt) for r, tt in zip(rev, tangents, strict=True)
    )
    np.testing.assert_allclose(np.asarray(t), np.asarray(expected), rtol=1e-5, atol=1e-5)
    hess = jax.hessian(lambda x: f(x, s, b).sum())(x)
    assert np.all(np.isfinite(np.asarray(hess)))


def test_jax_grad_of_an_empty_block():
    spec = RMSNormSpec()
    dx, ds = jax.grad(lambda x, s: flax_rms_norm(x, spec, s).sum(), argnums=(0, 1))(
        jnp.zeros((4, 0)), jnp.ones(0)
    )
    assert dx.shape == (4, 0) and ds.shape == (0,)


@pytest.mark.parametrize("compute_dtype", ["float32", "input"])
def test_jax_zero_rows_with_eps_outside_have_finite_gradients(compute_dtype):
    spec = RMSNormSpec.preset("paper", compute_dtype=compute_dtype)
    x = jnp.zeros((2, 8))
    dx, ds = jax.grad(lambda x, s: flax_rms_norm(x, spec, s).sum(), argnums=(0, 1))(x, jnp.ones(8))
    expected, _, _ = reference.rms_norm_vjp(np.zeros((2, 8)), np.ones((2, 8)), spec, np.ones(8))
    assert np.all(np.isfinite(np.asarray(dx))) and np.all(np.isfinite(np.asarray(ds)))
    np.testing.assert_allclose(np.asarray(dx), expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 8), (64, 1024)], ids=["small", "blocked-size"])
def test_torch_zero_rows_with_eps_outside_have_finite_gradients(shape):
    m = RMSNorm.from_spec(RMSNormSpec.preset("paper"), shape[-1])
    x = torch.zeros(shape, requires_grad=True)
    m(x).sum().backward()
    expected, _, _ = reference.rms_norm_vjp(
        np.zeros(shape), np.ones(shape), m.spec, np.ones(shape[-1])
    )
    assert torch.isfinite(x.grad).all() and torch.isfinite(m.weight.grad).all()
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)
