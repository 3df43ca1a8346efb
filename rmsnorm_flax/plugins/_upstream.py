"""The upstream runner of ``rmsnorm verify`` for the ``flax`` preset: ``flax.linen.RMSNorm``
itself under ``jax.jit``, compared bit for bit with ``flax-linen``'s output."""

from __future__ import annotations

import flax.linen as fnn
import jax
import jax.numpy as jnp
import numpy as np

from rmsnorm_core.backends import NotApplicable
from rmsnorm_core.testing import Outcome, Problem, upstream_takes


def flax_linen_run(p: Problem) -> Outcome:
    """``upstream-flax-linen``: flax's own module on the ``flax`` preset's problems."""
    if not upstream_takes(p, "flax"):
        raise NotApplicable("not a call flax.linen.RMSNorm makes")
    module = fnn.RMSNorm(epsilon=p.spec.eps)
    variables = {"params": {"scale": jnp.asarray(p.scale)}}
    return Outcome(np.asarray(jax.jit(module.apply)(variables, jnp.asarray(p.x))))
