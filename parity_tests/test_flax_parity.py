"""rmsnorm_flax's function without jit, the naive compute mode, the residual variant,
vmap/remat and what its backward saves.

Every preset x dtype x case under jit (modules, linen and nnx) is
``test_parity_matrix.py`` (runners ``flax-linen``, ``flax-nnx``).
"""

from __future__ import annotations

import numpy as np
import pytest
from _parity import DTYPES, check_forward, check_gradients, make_problem
from _sweep import covering, sweep

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from rmsnorm_core import RMSNormSpec, dtype_plan  # noqa: E402
from rmsnorm_core.testing import cases  # noqa: E402
from rmsnorm_flax import rms_norm, rms_norm_residual  # noqa: E402


def _run(problem, jit):
    def f(x, s, b):
        return rms_norm(x, problem.spec, s, b)

    fn = jax.jit(f) if jit else f
    y, pull = jax.vjp(fn, problem.x, problem.scale, problem.bias)
    return y, pull(jnp.asarray(problem.dy))


def _np(a):
    return None if a is None else np.asarray(a)


EAGER = [(p, d, c) for p in ("flax", "llama", "gemma") for d in DTYPES for c in cases("verify")[:4]]
# the default run: every preset and every case in every dtype
EAGER = sweep(EAGER, covering(EAGER, [(0, 1), (2, 1)], lambda r: (r[0], r[1], r[2].id)))


@pytest.mark.parametrize(
    "preset,dtype,case", EAGER, ids=[f"flax-eager-{d}-{p}-{c.id}" for p, d, c in EAGER]
)
def test_function_forward_and_gradients_without_jit(preset, dtype, case):
    problem = case.problem(RMSNormSpec.preset(preset), dtype)
    y, (dx, dscale, dbias) = _run(problem, jit=False)
    name = f"flax eager {dtype} {preset} {case.id}"
    check_forward(problem, _np(y), name=name)
    check_gradients(problem, _np(dx), _np(dscale), _np(dbias), name=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_compute_dtype_input_reproduces_naive_code(dtype):
    problem = make_problem("torch", dtype, (6, 64), {"compute_dtype": "input"})
    y, (dx, dscale, dbias) = _run(problem, jit=True)
    check_forward(problem, _np(y), name=f"naive {dtype}")
    check_gradients(problem, _np(dx), _np(dscale), _np(dbias), name=f"naive {dtype}")
    assert dtype_plan(problem.spec, dtype).compute == dtype


@pytest.mark.parametrize("residual_dtype", ["input", "float32"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_residual_fused_equals_unfused(dtype, residual_dtype):
    problem = make_problem("torch", dtype, (9, 128), {"residual_dtype": residual_dtype})
    r = problem.x[::-1].copy()
    y, s = jax.jit(lambda x, r: rms_norm_residual(x, r, problem.spec, problem.scale))(problem.x, r)
    store = jnp.dtype(dtype) if residual_dtype == "input" else jnp.float32
    assert s.dtype == store
    assert np.array_equal(
        np.asarray(s),
        np.asarray((problem.x.astype(np.float32) + r.astype(np.float32)).astype(store)),
    )
    unfused = jax.jit(lambda s: rms_norm(s, problem.spec, problem.scale))(s).astype(y.dtype)
    assert y.dtype == jnp.dtype(dtype) and np.array_equal(np.asarray(y), np.asarray(unfused))


def test_vmap_and_remat_equal_plain():
    problem = make_problem("gemma", "bfloat16", (4, 6, 32), {})
    plain = rms_norm(problem.x, problem.spec, problem.scale)
    mapped = jax.vmap(lambda x: rms_norm(x, problem.spec, problem.scale))(problem.x)
    assert np.array_equal(np.asarray(plain), np.asarray(mapped))

    def loss(x, s):
        return jnp.sum(rms_norm(x, problem.spec, s).astype(jnp.float32) ** 2)

    g_plain = jax.grad(loss, argnums=(0, 1))(problem.x, problem.scale)
    g_remat = jax.grad(jax.checkpoint(loss), argnums=(0, 1))(problem.x, problem.scale)
    for a, b in zip(g_plain, g_remat, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_analytic_backward_saves_no_float32_copy_of_x():
    # The residuals of the analytic VJP: x itself (bf16), the params and a per-row
    # fp32 statistic; no fp32 array of x's shape.
    problem = make_problem("flax", "bfloat16", (64, 256), {})
    _, pull = jax.vjp(
        lambda x, s: rms_norm(x, problem.spec, s, vjp="analytic"), problem.x, problem.scale
    )
    leaves = [leaf for leaf in jax.tree.leaves(pull) if hasattr(leaf, "shape")]
    big_f32 = [
        leaf for leaf in leaves if leaf.dtype == jnp.float32 and leaf.shape == problem.x.shape
    ]
    assert not big_f32, [leaf.shape for leaf in leaves]
    assert any(leaf.dtype == jnp.float32 and leaf.shape == (64, 1) for leaf in leaves)
