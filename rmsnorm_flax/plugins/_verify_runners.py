"""The Flax runners of ``rmsnorm verify`` and the test suite: linen under jit, and nnx.

Each returns an ``Outcome`` with the forward output, the residual sum and the
gradients from ``jax.vjp`` for the problem's cotangent.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx as fnnx

from rmsnorm_core import param_shape
from rmsnorm_core.testing import Outcome, Problem
from rmsnorm_flax import linen, nnx


def _params(p: Problem) -> dict:
    out = {}
    if p.scale is not None:
        out["scale"] = jnp.asarray(p.scale)
    if p.bias is not None:
        out["bias"] = jnp.asarray(p.bias)
    return out


def _np(a: Any) -> np.ndarray | None:
    return None if a is None else np.asarray(a)


def linen_run(p: Problem) -> Outcome:
    """``flax-linen``: the linen module under ``jax.jit``, forward and VJP (both in one
    jitted function: one compilation per problem)."""
    residual = p.residual is not None
    module = (linen.ResidualRMSNorm if residual else linen.RMSNorm)(spec=p.spec)
    variables = {"params": _params(p)}
    args = (jnp.asarray(p.x), jnp.asarray(p.residual)) if residual else (jnp.asarray(p.x),)

    def f(v, *a):
        return module.apply(v, *a)

    if p.x.size == 0:
        out = jax.jit(f)(variables, *args)
        y, s = out if residual else (out, None)
        return Outcome(_np(y), _np(s))

    @jax.jit
    def forward_and_vjp(v, dy, *a):
        out, pull = jax.vjp(f, v, *a)
        cot = (dy, jnp.zeros_like(out[1])) if residual else dy
        return out, pull(cot)

    out, (dv, dx, *_) = forward_and_vjp(variables, jnp.asarray(p.dy), *args)
    y, s = out if residual else (out, None)
    grads = (_np(dx), _np(dv["params"].get("scale")), _np(dv["params"].get("bias")))
    return Outcome(_np(y), _np(s), grads)


def nnx_run(p: Problem) -> Outcome:
    """``flax-nnx``: the nnx module, forward and gradients."""
    pshape = param_shape(p.spec, p.x.shape)
    features = pshape[0] if len(pshape) == 1 else pshape
    residual = p.residual is not None
    cls = nnx.ResidualRMSNorm if residual else nnx.RMSNorm
    model = cls(features, spec=p.spec, rngs=fnnx.Rngs(0))
    for field, value in _params(p).items():
        getattr(model, field)[...] = value
    graphdef, state = fnnx.split(model)
    args = (jnp.asarray(p.x), jnp.asarray(p.residual)) if residual else (jnp.asarray(p.x),)

    def f(st, *a):
        return fnnx.merge(graphdef, st)(*a)

    out, pull = jax.vjp(f, state, *args)
    y, s = out if residual else (out, None)
    if p.x.size == 0:
        return Outcome(_np(y), _np(s))
    cot = (jnp.asarray(p.dy), jnp.zeros_like(s)) if residual else jnp.asarray(p.dy)
    dstate, dx, *_ = pull(cot)
    grads = {k: v for k, v in fnnx.to_flat_state(dstate)}
    dscale = grads.get(("scale",))
    dbias = grads.get(("bias",))
    grads = (
        _np(dx),
        _np(dscale[...] if dscale is not None else None),
        _np(dbias[...] if dbias is not None else None),
    )
    return Outcome(_np(y), _np(s), grads)


def distributed_batch(problems: list[Problem]) -> list[Outcome]:
    """``jax-2procs``: every problem in one 2-process launch."""
    from rmsnorm_flax.plugins._distributed_runner import run_all

    return run_all(problems)
