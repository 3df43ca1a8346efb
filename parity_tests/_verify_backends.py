"""Runners for backends the verify tests register in process (with the ``registered``
fixture of conftest.py): they return the float64 reference itself (times ``scale``),
and its gradients where a runner with autograd would."""

from __future__ import annotations

import numpy as np

from rmsnorm_core.backends import Runner
from rmsnorm_core.oracle._reference import rms_norm_vjp
from rmsnorm_core.testing import Outcome, expected_forward


def reference_runner(name, scale=1.0):
    """A runner that returns the reference itself (times ``scale``)."""

    def run(p):
        y, s = expected_forward(p)
        return Outcome(y * np.asarray(scale, y.dtype), s)

    return Runner(name, run)


def with_gradients(p):
    """The reference's output and gradients, as a runner with autograd returns them."""
    y, s = expected_forward(p)
    at = s if s is not None else p.x
    grads = rms_norm_vjp(at, p.dy.astype(np.float64), p.spec, p.scale, p.bias)
    like = (p.x, p.scale, p.bias)
    return Outcome(
        y,
        s,
        tuple(None if g is None else g.astype(a.dtype) for g, a in zip(grads, like, strict=True)),
    )
