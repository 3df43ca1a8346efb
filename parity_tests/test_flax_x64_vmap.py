"""Our flax layers under ``jax_enable_x64`` and with a ``vmap`` axis name.

x64: the checks of ``_flax_x64_checks.py`` (flax's output dtype, ``y``, ``dx`` and
``dscale`` bit for bit, linen and nnx), run in a subprocess, since the flag must
be set before jax is imported.

``axis_name`` bound by ``vmap`` (flax's cross-example statistic): the ``flax``
preset equals ``flax.linen.RMSNorm(axis_name=...)`` bit for bit, gradients
included; the presets whose gradients come from the analytic VJP (``llama``,
``t5``, ``onnx`` by default, any with ``vjp="analytic"``) give the gradients of
the same spec normalizing over the batch axis too, within the tolerance table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _check_script import assert_passed, assert_ran_all, run_checks
from _sweep import covering, sweep

jax = pytest.importorskip("jax")
import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from rmsnorm_core import RMSNormSpec, assert_close  # noqa: E402
from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import rms_norm  # noqa: E402

SCRIPT = Path(__file__).with_name("_flax_x64_checks.py")
X64_NAMES = [
    f"{api}-{case}"
    for api in ("linen", "nnx")
    for case in (
        "f64-dtype-f32",
        "f32-dtype-f64",
        "bf16-dtype-f64",
        "f32-param-f64",
        "f64",
        "f32-eps-np-f64",
        "bf16-eps-np-f64",
    )
]


# one worker runs this module, so its module-scoped fixture (a subprocess run or a site
# build) runs once instead of once on each worker
pytestmark = pytest.mark.xdist_group("flax-x64")


@pytest.fixture(scope="module")
def x64_run():
    return run_checks(SCRIPT)


@pytest.mark.parametrize("name", X64_NAMES)
def test_x64_matches_flax(x64_run, name):
    assert_passed(x64_run, name)


def test_x64_script_ran_every_check(x64_run):
    assert_ran_all(x64_run, X64_NAMES)


def _inputs(dtype):
    kx, ks, kd = jax.random.split(jax.random.key(11), 3)
    x = (jax.random.normal(kx, (4, 3, 8)) * 2).astype(dtype)
    scale = jax.random.uniform(ks, (8,), minval=0.5, maxval=1.5)
    return x, scale, jax.random.normal(kd, x.shape).astype(dtype)


def _vmapped_grads(norm, x, scale, dy):
    """``(y, dx, dscale)`` of ``norm(example, scale)`` vmapped over axis 0 named "b"."""
    f = jax.vmap(norm, in_axes=(0, None), axis_name="b")
    y, pull = jax.vjp(f, x, scale)
    return (y, *pull(dy.astype(y.dtype)))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_vmap_axis_name_flax_preset_is_flaxs(dtype):
    x, scale, dy = _inputs(dtype)

    def with_module(cls):
        def norm(xi, s):
            return cls(axis_name="b").apply({"params": {"scale": s}}, xi)

        return jax.jit(lambda x, s, dy: _vmapped_grads(norm, x, s, dy))(x, scale, dy)

    got, want = with_module(ours_linen.RMSNorm), with_module(fnn.RMSNorm)
    for name, a, b in zip(("y", "dx", "dscale"), got, want, strict=True):
        assert a.dtype == b.dtype, name
        assert bool(jnp.array_equal(a, b)), f"{name}: {int(jnp.sum(a != b))} elements differ"


VMAP_ROWS = [
    (p, d, v)
    for p in ("llama", "t5", "onnx", "gemma", "flax")
    for d in ("float32", "bfloat16")
    for v in ("autodiff", "analytic")
]
# the default run: every preset in both dtypes and with both VJPs, each dtype with each VJP
VMAP_ROWS = sweep(VMAP_ROWS, covering(VMAP_ROWS, [(0, 1), (0, 2), (1, 2)]))


@pytest.mark.parametrize("preset,dtype,vjp", VMAP_ROWS, ids=["-".join(r) for r in VMAP_ROWS])
def test_vmap_axis_name_gradients_are_the_joint_norms(preset, dtype, vjp):
    # vmap's axis "b" joins the examples' statistic: the same spec over axes (0, -1)
    # without vmap, the scale over the last axis, is the independent reference
    x, scale, dy = _inputs(dtype)
    spec = RMSNormSpec.preset(preset)

    def norm(xi, s):
        return rms_norm(xi, spec, s, axis_name="b", vjp=vjp)

    got = jax.jit(lambda x, s, dy: _vmapped_grads(norm, x, s, dy))(x, scale, dy)
    joint = spec.replace(axes=(0, -1))
    y, pull = jax.vjp(lambda x, s: rms_norm(x, joint, s, feature_axes=-1), x, scale)
    want = (y, *pull(dy.astype(y.dtype)))
    for name, a, b in zip(("y", "dx", "dscale"), got, want, strict=True):
        assert a.dtype == b.dtype, name
        key = jnp.dtype(a.dtype).name
        assert_close(
            np.asarray(a, np.float64),
            np.asarray(b, np.float64),
            key,
            gradient=name != "y",
            name=name,
        )
