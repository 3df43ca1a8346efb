"""The tests' view of core's shared problems and checks (``rmsnorm_core.testing``).

``rmsnorm verify`` uses the same problems and the same checker; here a failed
check raises AssertionError with its reason.
"""

from __future__ import annotations

import numpy as np

from rmsnorm_core import RMSNormSpec
from rmsnorm_core import testing as problems
from rmsnorm_core.testing import Problem

PRESETS = list(problems.distinct_presets())  # t5 is flax's spec: checked once
DTYPES = list(problems.DTYPES)

__all__ = [
    "DTYPES",
    "PRESETS",
    "Problem",
    "check_forward",
    "check_gradients",
    "make_problem",
]


def make_problem(
    preset: str,
    dtype: str,
    shape: tuple[int, ...],
    overrides: dict,
    *,
    seed: int = 0,
    use_bias: bool | None = None,
) -> Problem:
    """A problem for ``preset`` with ``overrides`` (and ``use_bias`` if given)."""
    spec = RMSNormSpec.preset(preset, **overrides)
    if use_bias is not None:
        spec = spec.replace(use_bias=use_bias)
    return problems.make_problem(spec, dtype, shape, seed=seed)


def check_forward(problem: Problem, y: np.ndarray, *, name: str) -> None:
    """Assert the forward check passes."""
    result = problems.check_forward(problem, y)
    assert result.passed, f"{name}: {result.reason}"


def check_gradients(
    problem: Problem,
    dx: np.ndarray,
    dscale: np.ndarray | None,
    dbias: np.ndarray | None,
    *,
    name: str,
) -> None:
    """Assert the gradient check passes."""
    result = problems.check_gradients(problem, dx, dscale, dbias)
    assert result.passed, f"{name} {result.reason}"
