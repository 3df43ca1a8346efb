"""Every runner of every backend x core's case table x every preset x dtype.

The same runners and the same cases as ``rmsnorm verify``: each outcome is
judged by ``rmsnorm_core.testing.check_outcome`` against the float64
reference, forward and (where the runner has them) gradients. The long run
(``RMSNORM_FUZZ=long``) runs every case (the verify run takes those tagged
``verify``), the default run a covering subset; costly runners take the cases
carrying their tag, as in verify.
"""

from __future__ import annotations

import pytest
from _sweep import covering, sweep

from rmsnorm_core.backends import backends
from rmsnorm_core.testing import (
    CASES,
    DTYPES,
    check_outcome,
    distinct_presets,
    in_one_launch,
    with_batches,
)

PRESETS = distinct_presets()  # presets that are one spec run once
# multi-process runners start processes per call: test_distributed.py runs them
# upstream runners run other libraries' norms: their bit rows are test_upstream_bits' and
# test_verify's
RUNNERS = [
    (b.name, r)
    for b in backends().values()
    for r in b.runners
    if not r.distributed and r.upstream is None
]
# the costly runners (export, compile) are covered for every preset by `rmsnorm
# verify`'s own test run (test_verify.py); here they take two presets that
# differ in every rounding rule, to keep the suite inside its budget
COSTLY_PRESETS = ("llama", "gemma")

MATRIX = [
    (runner, case, preset, dtype)
    for _, runner in RUNNERS
    for case in CASES
    for preset in PRESETS
    for dtype in DTYPES
    if runner.only_tag is None or (runner.only_tag in case.tags and preset in COSTLY_PRESETS)
    if runner.residual or not case.residual
    if runner.empty or 0 not in case.shape
]


def _key(row: tuple) -> tuple:
    return (row[0].name, row[1].id, row[2], row[3])


# the default run: each runner takes every case and every preset in every dtype (the
# rounding rules are per preset and dtype, the shapes' code paths per case); flax-nnx
# calls the functional core that flax-linen's rows cover so, at about 6x a linen row's
# cost here, and takes every case, preset and dtype once
_NNX = [row for row in MATRIX if row[0].name == "flax-nnx"]
_REST = [row for row in MATRIX if row[0].name != "flax-nnx"]
MATRIX = sweep(
    MATRIX,
    covering(_REST, [(0, 1, 3), (0, 2, 3)], _key) + covering(_NNX, [(0, 1), (0, 2), (0, 3)], _key),
)


_LAUNCHED: dict = {}


def _launched(runner, case, preset, dtype):
    """A launching runner's outcome for one row (``runner.batch``: a process per launch).
    Every row of that runner in this module runs in ONE launch, at its first row: a
    launch per row took 4-5 s here, most of it the child's imports. Each problem and
    its batch prefixes are in that launch (``in_one_launch``)."""
    if runner.name not in _LAUNCHED:
        rows = [(c, p, d) for r, c, p, d in MATRIX if r.name == runner.name]
        problems = [c.problem(PRESETS[p], d) for c, p, d in rows]
        outcomes = in_one_launch(runner.batch, problems)
        _LAUNCHED[runner.name] = {
            (c.id, p, d): o for (c, p, d), o in zip(rows, outcomes, strict=True)
        }
    return _LAUNCHED[runner.name][(case.id, preset, dtype)]


@pytest.mark.parametrize(
    "runner,case,preset,dtype",
    MATRIX,
    ids=[f"{r.name}-{d}-{p}-{c.id}" for r, c, p, d in MATRIX],
)
def test_runner_matches_reference(runner, case, preset, dtype):
    problem = case.problem(PRESETS[preset], dtype)
    assert runner.takes(case, problem)
    if runner.batch is not None:
        outcome = _launched(runner, case, preset, dtype)
    else:
        outcome = with_batches(runner.run, problem, runner.run(problem))
    for check, result in check_outcome(problem, outcome):
        if check == "batch" and runner.batch_variance:
            continue  # the runtime's own property (test_batch_invariance.py shows it)
        assert result.passed, f"{runner.name} {check}: {result.reason}"
    if runner.name in ("torch-eager", "torch-script", "flax-linen", "flax-nnx"):
        assert outcome.grads is not None or problem.x.size == 0, "a training path returns gradients"
    # rmsnorm verify plans its gradient checks from the declaration: it must hold
    returned = outcome.grads is not None
    assert returned == (runner.gradients and problem.x.size > 0), f"{runner.name}: {returned=}"


def test_every_backend_of_this_project_is_registered():
    assert {"flax", "torch"} <= set(backends())
