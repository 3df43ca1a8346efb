"""The checks ``rmsnorm verify`` plans for one problem, and the one record of each.

The plan alone decides which records a problem gets. For each runner that took the
problem (``Runner.takes``) and did not decline it (``NotApplicable``), in order:

- ``forward``: its output against the float64 reference;
- ``gradients``: where the runner declares gradients (``Runner.gradients``) and the
  input has elements;
- ``batch``: where the problem has batch sizes (``Problem.batches``);

then ``cross`` (each backend's first runner against the first backend's), ``self``
(each other runner against its backend's first) and ``bits`` (each upstream runner
against its backend's first). Each planned check gets exactly one record, whatever
happened: a runner that raised fails each of its checks with the error named, and a
check that compares with it fails naming it. The summary's counts therefore add up to
the plan by construction, and no check of a crashed runner vanishes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rmsnorm_core.io._digest import array_digest
from rmsnorm_core.parity._problems import (
    Outcome,
    Problem,
    check_batches,
    check_forward,
    check_gradients,
)
from rmsnorm_core.verify._records import (
    Record,
    bit_check,
    cross_check,
    failure,
    record,
    self_check,
)


@dataclasses.dataclass(frozen=True)
class Planned:
    """One check of the plan.

    Attributes:
        backend: the backend of the runner judged.
        runner: the runner judged (a ``Runner``).
        check: ``forward``, ``gradients``, ``batch``, ``cross``, ``self`` or ``bits``.
        against: ``"reference"``, or the runner whose output it is compared with.
    """

    backend: str
    runner: Any
    check: str
    against: str = "reference"


def plan(p: Problem, taking: list[tuple[str, Any]]) -> list[Planned]:
    """The checks of problem ``p`` (see the module docstring); ``taking``: the
    ``(backend, runner)`` pairs that took it, in the run's order."""
    out: list[Planned] = []
    first: dict[str, str] = {}  # backend -> its first runner that is not an upstream one
    for backend, runner in taking:
        out.append(Planned(backend, runner, "forward"))
        if runner.gradients and p.x.size:
            out.append(Planned(backend, runner, "gradients"))
        if p.batches:
            out.append(Planned(backend, runner, "batch"))
        if runner.upstream is None:
            first.setdefault(backend, runner.name)
    heads = list(first.items())
    by_name = {runner.name: runner for _, runner in taking}
    out += [Planned(b, by_name[name], "cross", heads[0][1]) for b, name in heads[1:]]
    for backend, runner in taking:
        if runner.upstream is None and first[backend] != runner.name:
            out.append(Planned(backend, runner, "self", first[backend]))
    for backend, runner in taking:
        if runner.upstream is not None and backend in first:
            out.append(Planned(backend, runner, "bits", first[backend]))
    return out


def records(
    base: dict,
    p: Problem,
    planned: list[Planned],
    outcomes: dict[str, Outcome | Exception],
    seconds: dict[str, float | None],
) -> list[Record]:
    """One record per planned check, in the plan's order: ``outcomes`` and ``seconds``
    by runner name (an outcome is the error where the runner raised)."""
    return [_record(base, p, c, outcomes, seconds) for c in planned]


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def _record(
    base: dict,
    p: Problem,
    c: Planned,
    outcomes: dict[str, Outcome | Exception],
    seconds: dict[str, float | None],
) -> Record:
    name = c.runner.name
    own = outcomes[name]
    timed = seconds.get(name) if c.check == "forward" else None
    if isinstance(own, Exception):  # a crash fails every check it owed
        return failure(base, c.backend, name, c.check, _error(own), against=c.against,
                       seconds=timed)  # fmt: skip
    if c.against != "reference":
        other = outcomes[c.against]
        if isinstance(other, Exception):
            reason = f"not compared: {c.against} raised {_error(other)}"
            return failure(base, c.backend, name, c.check, reason, against=c.against)
        if c.check == "cross":
            return cross_check(base, p, c.backend, name, c.against, other.y, own.y)
        if c.check == "self":
            return self_check(base, c.backend, c.runner, c.against, other.y, own.y)
        return bit_check(base, c.backend, name, c.against, other.y, own.y)
    if c.check == "forward":
        result = check_forward(p, own.y, own.s)
        return record(base, c.backend, name, "forward", result, seconds=timed,
                      out_digest=array_digest(own.y, own.s))  # fmt: skip
    if c.check == "gradients":
        if own.grads is None:
            reason = f"{name} returned no gradients; it declares them (Runner.gradients)"
            return failure(base, c.backend, name, "gradients", reason)
        result = check_gradients(p, *own.grads)
        return record(base, c.backend, name, "gradients", result,
                      out_digest=array_digest(*own.grads))  # fmt: skip
    row = record(base, c.backend, name, "batch", check_batches(p, own),
                 out_digest=array_digest(*own.batch_ys))  # fmt: skip
    if row.status == "fail" and c.runner.batch_variance:
        row.status, row.reason = "varies", f"{row.reason} ({c.runner.batch_variance})"
    return row
