"""The tests' view of core's shared problems and checks (rmsnorm_core._problems).

``rmsnorm verify`` uses the same problems and the same checker; here a failed
check raises AssertionError with its reason.
"""

from __future__ import annotations

import numpy as np

from rmsnorm_core import RMSNormSpec
from rmsnorm_core import _problems as problems
from rmsnorm_core._problems import Problem

PRESETS = list(RMSNormSpec.presets())
DTYPES = ["float32", "bfloat16", "float16"]

# (id, input shape, spec overrides): shapes differ from any export sample.
AXES_CASES = [
    ("trailing", (5, 7, 48), {}),
    ("nchw-c", (3, 12, 5, 4), {"axes": (1,)}),
    ("two-axes", (4, 6, 10), {"axes": (-2, -1)}),
    ("non-adjacent", (3, 5, 4, 6), {"axes": (1, 3)}),
    ("partial", (6, 40), {"partial": 0.25}),
    ("size1-axis", (5, 1), {}),
    ("empty-batch", (0, 16), {}),
    ("long-rows", (48, 1536), {}),  # large enough for torch's blocked eager kernel
]

__all__ = [
    "AXES_CASES",
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
