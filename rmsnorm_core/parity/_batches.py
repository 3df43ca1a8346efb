"""Batch invariance: a row's output is the same bits whatever batch it is computed in.

A problem with ``batches`` (leading-dim sizes, e.g. ``(1, 7, 64)``) is also run on
each prefix ``x[:k]`` as a call of its own; every prefix's output must equal the
first ``k`` rows of the full call's output bit for bit (NaN equal to NaN). Serving
stacks lose correctness to exactly this: a kernel that switches its blocking with
the batch size rounds a row differently in a batch of 1 than in a batch of 64.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rmsnorm_core.parity._problems import Outcome, Problem


def prefix(p: Problem, k: int) -> Problem:
    """``p`` on its first ``k`` rows (leading dim): input, cotangent and residual."""
    residual = None if p.residual is None else p.residual[:k]
    return dataclasses.replace(p, x=p.x[:k], dy=p.dy[:k], residual=residual, batches=())


def with_batches(run: Callable[[Problem], Outcome], p: Problem, outcome: Outcome) -> Outcome:
    """``outcome`` with ``batch_ys`` filled: the runner's own (an export runner runs its
    artifact at every size in one go) or, where it gave none, one ``run`` per prefix."""
    if not p.batches or outcome.batch_ys:
        return outcome
    return dataclasses.replace(outcome, batch_ys=tuple(run(prefix(p, k)).y for k in p.batches))


def in_one_launch(
    batch: Callable[[list[Problem]], list[Outcome]], problems: list[Problem]
) -> list[Outcome]:
    """A batch runner's outcomes, each with its batch-size prefixes (``Problem.batches``)
    run in the same launch as the problems themselves."""
    prefixes = [[prefix(p, k) for k in p.batches] for p in problems]
    results = iter(batch([q for p, more in zip(problems, prefixes, strict=True)
                          for q in (p, *more)]))  # fmt: skip
    out = []
    for more in prefixes:
        outcome = next(results)
        ys = tuple(next(results).y for _ in more)
        out.append(dataclasses.replace(outcome, batch_ys=ys) if more else outcome)
    return out

