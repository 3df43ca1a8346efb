"""The cross-framework parity matrix behind ``rmsnorm verify``.

Specs x dtypes x cases (``rmsnorm_core.testing``) x runners (every backend
found through :mod:`rmsnorm_core.backends`); each runner's forward (and
gradients, where it has them) is compared with the float64 reference under
the tolerance table, and each backend's first runner with the first
backend's. A backend whose framework is not installed is reported as
skipped, never as passed.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from rmsnorm_core.io._digest import array_digest
from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.parity._batches import in_one_launch, with_batches
from rmsnorm_core.parity._case_table import CHECKPOINT, DTYPES, QUICK_DTYPES, Case, cases
from rmsnorm_core.parity._problems import Problem, check_outcome, make_problem
from rmsnorm_core.registry._backends import Backend, NotApplicable, Runner
from rmsnorm_core.spec._plan import sample_shape
from rmsnorm_core.spec._spec import RMSNormSpec
from rmsnorm_core.verify._records import (
    Record,
    bit_checks,
    cross_checks,
    failure,
    record,
    self_checks,
)

Item = tuple[str, Case, Problem]


def problems_for(specs: dict[str, RMSNormSpec], quick: bool) -> list[Item]:
    """(spec label, case, problem) for every spec, dtype and case of the run."""
    selected = cases("quick" if quick else "verify")
    return [
        (label, case, case.problem(spec, dtype))
        for label, spec in specs.items()
        for dtype in (QUICK_DTYPES if quick else DTYPES)
        for case in selected
    ]


def problems_for_weights(layers: dict[str, NeutralLayer], quick: bool) -> list[Item]:
    """One problem per layer and dtype, carrying the checkpoint's own parameters."""
    out: list[Item] = []
    for name, layer in layers.items():
        shape = sample_shape(layer.spec, layer.param_shape)
        for dtype in QUICK_DTYPES if quick else DTYPES:
            p = make_problem(layer.spec, dtype, shape, seed=len(out))
            out.append(
                (name, CHECKPOINT, dataclasses.replace(p, scale=layer.scale, bias=layer.bias))
            )
    return out


def select_runners(
    available: dict[str, Backend], names: Iterable[str] | None, distributed: bool = False
) -> dict[str, list[Runner]]:
    """Runners by backend, narrowed to ``names`` (runner or backend names) if given;
    multi-process runners only with ``distributed`` or when named themselves."""
    wanted = None if names is None else set(names)
    out: dict[str, list[Runner]] = {}
    for backend in available.values():
        chosen = [
            r
            for r in backend.runners
            if (wanted is None or r.name in wanted or backend.name in wanted)
            and (distributed or not r.distributed or (wanted is not None and r.name in wanted))
        ]
        if chosen:
            out[backend.name] = chosen
    return out


def run_matrix(
    items: list[Item],
    runners: dict[str, list[Runner]],
    skipped: dict[str, str],
    quick: bool,
    progress: Callable[[int, int, str], None],
    jobs: int = 2,
) -> list[Record]:
    """Run every runner on every problem it takes; return the records (in a fixed order:
    problem by problem, runner by runner, whatever order the work ran in)."""
    outcomes = _run_all(items, runners, quick, progress, jobs)
    records: list[Record] = []
    for i, (label, case, p) in enumerate(items):
        dtype = p.x.dtype.name
        base = dict(
            spec=label, spec_json=p.spec.to_dict(), case=case.id, dtype=dtype, shape=list(p.x.shape)
        )
        primary: dict[str, np.ndarray] = {}
        first: dict[str, tuple[str, np.ndarray]] = {}  # backend -> its first runner's output
        others: list[tuple[str, Runner, np.ndarray]] = []
        upstream: list[tuple[str, str, np.ndarray]] = []
        for backend, chosen in runners.items():
            for runner in chosen:
                if (i, runner.name) not in outcomes:
                    continue  # not taken, or not applicable
                outcome, seconds = outcomes[(i, runner.name)]
                if isinstance(outcome, Exception):  # reported, never hidden: a crash fails
                    records.append(failure(base, runner.name, outcome))
                    continue
                for check, result in check_outcome(p, outcome):
                    arrays = {"forward": (outcome.y, outcome.s), "gradients": outcome.grads,
                              "batch": outcome.batch_ys}[check]  # fmt: skip
                    out = array_digest(*arrays)
                    row = record(base, runner.name, check, result, seconds, None, out)
                    if check == "batch" and row.status == "fail" and runner.batch_variance:
                        row.status, row.reason = "varies", f"{row.reason} ({runner.batch_variance})"
                    records.append(row)
                if runner.upstream is not None:
                    upstream.append((backend, runner.name, outcome.y))
                elif backend in first:
                    others.append((backend, runner, outcome.y))
                else:
                    primary[backend] = outcome.y
                    first[backend] = (runner.name, outcome.y)
        records.extend(cross_checks(base, p, primary))
        records.extend(self_checks(base, first, others))
        records.extend(bit_checks(base, primary, upstream))
    for name, why in skipped.items():
        records.append(
            Record(
                "*", {}, "*", "*", [], backend=name, check="forward", status="skipped", reason=why
            )
        )
    return records


def _run_all(
    items: list[Item],
    runners: dict[str, list[Runner]],
    quick: bool,
    progress: Callable[[int, int, str], None],
    jobs: int,
) -> dict[tuple[int, str], tuple[Any, float]]:
    """Every ``(item index, runner) -> (outcome or error, seconds)``.

    Batch runners run first; then each backend's runners run in a thread of
    their own (``jobs`` at a time): the backends share no state (path choices
    are made per call, from the inputs), and one backend's compilers release
    the GIL while the other's run, so two cores finish the matrix in about
    the time of its slowest backend.
    """
    out: dict[tuple[int, str], tuple[Any, float]] = {}
    for name, by_item in _run_batches(items, runners, quick, progress).items():
        for i, entry in by_item.items():
            out[(i, name)] = (entry, 0.0) if isinstance(entry, Exception) else entry
    tasks = [
        [(i, r) for i, (_, case, p) in enumerate(items) for r in chosen
         if r.batch is None and r.takes(case, p, quick=quick)]
        for chosen in runners.values()
    ]  # fmt: skip
    total = sum(len(t) for t in tasks)
    done = [0]
    lock = threading.Lock()

    def work(backend_tasks: list[tuple[int, Runner]]) -> None:
        for i, runner in backend_tasks:
            label, case, p = items[i]
            start = time.perf_counter()
            try:
                entry: Any = with_batches(runner.run, p, runner.run(p))
            except NotApplicable:
                entry = None
            except Exception as err:  # recorded as a failure
                entry = err
            with lock:
                if entry is not None:
                    out[(i, runner.name)] = (entry, time.perf_counter() - start)
                done[0] += 1
                progress(done[0], total, f"{runner.name} {p.x.dtype.name} {label} {case.id}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for future in [pool.submit(work, t) for t in tasks if t]:
            future.result()
    return out


def _run_batches(
    items: list[Item],
    runners: dict[str, list[Runner]],
    quick: bool,
    progress: Callable[[int, int, str], None],
) -> dict[str, dict[int, Any]]:
    """``(outcome, seconds)`` of the batch runners by item index; a failed batch's
    error stands for each item it took (each is reported failed)."""
    out: dict[str, dict[int, Any]] = {}
    for chosen in runners.values():
        for runner in chosen:
            if runner.batch is None:
                continue
            taken = [
                i for i, (_, case, p) in enumerate(items) if runner.takes(case, p, quick=quick)
            ]
            progress(0, len(items), f"{runner.name}: {len(taken)} problems in one launch")
            start = time.perf_counter()
            try:
                outcomes = in_one_launch(runner.batch, [items[i][2] for i in taken])
            except Exception as err:  # every item it took is reported failed
                out[runner.name] = dict.fromkeys(taken, err)
                continue
            seconds = (time.perf_counter() - start) / max(len(taken), 1)
            out[runner.name] = {i: (o, seconds) for i, o in zip(taken, outcomes, strict=True)}
    return out

