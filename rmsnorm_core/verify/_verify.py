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

from rmsnorm_core._install import needs, split_hint
from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.parity._batches import in_one_launch, with_batches
from rmsnorm_core.parity._case_table import CHECKPOINT, DTYPES, QUICK_DTYPES, Case, cases
from rmsnorm_core.parity._problems import Outcome, Problem, make_problem
from rmsnorm_core.registry import _backends
from rmsnorm_core.registry._backends import Backend, NotApplicable, Runner
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._plan import sample_shape
from rmsnorm_core.spec._spec import RMSNormSpec
from rmsnorm_core.verify import _checks as checks
from rmsnorm_core.verify._records import Record, Skip

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


def runners_for(
    items: list[Item], quick: bool, names: Iterable[str] | None, distributed: bool = False
) -> tuple[dict[str, list[Runner]], dict[str, str]]:
    """The runners a run calls, by backend, and those it would call but cannot (name ->
    reason with the install command).

    One rule decides both: a runner counts when :func:`select_runners` selects it
    (``names``, ``distributed``) and it takes at least one of ``items``
    (``Runner.takes``: ``quick``, its case tags, its upstream's preset). Such a runner
    whose ``requires`` are missing is a skip; any other runner is neither run nor
    listed. A backend whose framework is missing (its runners unknown) is a skip
    where ``names`` select it (no names, or its own name)."""
    chosen: dict[str, list[Runner]] = {}
    skipped: dict[str, str] = {}
    wanted = None if names is None else set(names)
    for name, reason in _backends.unavailable().items():
        if wanted is None or name in wanted:
            skipped[name] = reason
    for backend, runners in select_runners(_backends.backends(), names, distributed).items():
        for runner in runners:
            if not any(runner.takes(case, p, quick=quick) for _, case, p in items):
                continue  # the run would never call it: neither run nor skipped
            missing = _backends.missing_modules(runner.requires)
            if missing:  # a partial install: skipped, saying what it needs
                skipped[runner.name] = needs(missing)
            else:
                chosen.setdefault(backend, []).append(runner)
    return chosen, skipped


@dataclasses.dataclass
class Matrix:
    """What a run produced.

    Attributes:
        records: one per planned check (:mod:`~rmsnorm_core.verify._checks`), in a
            fixed order (problem by problem, runner by runner), whatever happened to run.
        calls: runner calls made (one per problem a runner took; the progress counter's
            unit); each gives a forward check, and a gradient check where the runner
            declares gradients.
        not_applicable: calls the runner declined (``NotApplicable``: e.g. a case an
            exporter cannot express); they give no check.
    """

    records: list[Record]
    calls: int
    not_applicable: int


def run_matrix(
    items: list[Item],
    runners: dict[str, list[Runner]],
    quick: bool,
    progress: Callable[[int, int, str], None],
    jobs: int = 2,
) -> Matrix:
    """Run every runner on every problem it takes (see :class:`Matrix`); the records are
    the checks :func:`~rmsnorm_core.verify._checks.plan` plans, one each, whatever
    happened to run."""
    taken = {
        r.name: [i for i, (_, case, p) in enumerate(items) if r.takes(case, p, quick=quick)]
        for chosen in runners.values()
        for r in chosen
    }
    outcomes = _run_all(items, runners, taken, progress, jobs)
    out: list[Record] = []
    for i, (label, case, p) in enumerate(items):
        base = dict(spec=label, spec_json=p.spec.to_dict(), case=case.id, dtype=p.x.dtype.name,
                    shape=list(p.x.shape))  # fmt: skip
        taking, results, seconds = [], {}, {}
        for backend, chosen in runners.items():
            for runner in chosen:
                if i not in taken[runner.name]:
                    continue
                # a call with no entry did not complete: it fails, never vanishes
                entry = outcomes.get((i, runner.name), (RMSNormError("the call did not end"), None))
                if entry[0] is None:
                    continue  # declined (NotApplicable): no check
                taking.append((backend, runner))
                results[runner.name] = _declared(runner, p, entry[0])
                seconds[runner.name] = entry[1]
        out.extend(checks.records(base, p, checks.plan(p, taking), results, seconds))
    declined = sum(o is None for o, _ in outcomes.values())
    return Matrix(out, len(outcomes), declined)


def _declared(runner: Runner, p: Problem, outcome: Any) -> Any:
    """``outcome``, or the error where it breaks what ``runner`` declares: gradients it
    does not declare would go unjudged (``Runner.gradients``)."""
    if isinstance(outcome, Outcome) and outcome.grads is not None and not runner.gradients:
        return RMSNormError(f"runner {runner.name!r} returned gradients but declares none; "
                            "set Runner(gradients=True) so that they are checked")  # fmt: skip
    return outcome


def skips(skipped: dict[str, str], backends: set[str]) -> list[Skip]:
    """``skipped`` (name -> reason, as the registry words it) as :class:`Skip` rows: those
    named in ``backends`` are backends, the rest runners; the install command apart."""
    out = []
    for name, reason in skipped.items():
        why, install = split_hint(reason)
        out.append(Skip(name, "backend" if name in backends else "runner", why, install))
    return out


def _run_all(
    items: list[Item],
    runners: dict[str, list[Runner]],
    taken: dict[str, list[int]],
    progress: Callable[[int, int, str], None],
    jobs: int,
) -> dict[tuple[int, str], tuple[Any, float]]:
    """Every ``(item index, runner) -> (outcome or error or None, seconds)``: one entry per
    runner call, its outcome, the error it raised, or None where the runner declined
    (``NotApplicable``).

    The progress counter counts these calls, batch runners' included, against one
    total known before the first. Batch runners run first; then each backend's
    runners run in a thread of their own (``jobs`` at a time): the backends share no
    state (path choices are made per call, from the inputs), and one backend's
    compilers release the GIL while the other's run, so two cores finish the matrix
    in about the time of its slowest backend.
    """
    total = sum(len(t) for t in taken.values())
    done = [0]
    lock = threading.Lock()

    def advance(n: int, what: str) -> None:
        with lock:
            done[0] += n
            progress(done[0], total, what)

    out: dict[tuple[int, str], tuple[Any, float]] = {}
    for chosen in runners.values():
        for runner in chosen:
            if runner.batch is not None and taken[runner.name]:  # no launch for nothing
                out.update(_run_batch(items, runner, taken[runner.name], advance))
    tasks = [[(i, r) for r in chosen if r.batch is None for i in taken[r.name]]
             for chosen in runners.values()]  # fmt: skip
    tasks = [sorted(t, key=lambda ir: ir[0]) for t in tasks]  # problem by problem

    stop = threading.Event()  # set when the main thread is interrupted (Ctrl-C, SIGTERM)

    def work(backend_tasks: list[tuple[int, Runner]]) -> None:
        for i, runner in backend_tasks:
            if stop.is_set():  # a worker finishes its call in hand, then starts no other
                return
            label, case, p = items[i]
            start = time.perf_counter()
            try:
                entry: Any = with_batches(runner.run, p, runner.run(p))
            except NotApplicable:
                entry = None
            except Exception as err:  # recorded as a failure
                entry = err
            with lock:
                out[(i, runner.name)] = (entry, time.perf_counter() - start)
            advance(1, f"{runner.name} {p.x.dtype.name} {label} {case.id}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            for future in [pool.submit(work, t) for t in tasks if t]:
                future.result()
        except BaseException:  # the pool's exit waits for its workers: stop them first
            stop.set()
            raise
    return out


def _run_batch(
    items: list[Item], runner: Runner, taken: list[int], advance: Callable[[int, str], None]
) -> dict[tuple[int, str], tuple[Any, float]]:
    """``(outcome, seconds)`` of a batch runner by ``(item index, runner)``, the launch's
    time shared evenly; a failed launch's error stands for each item it took (each is
    reported failed)."""
    start = time.perf_counter()
    try:
        outcomes: list[Any] = in_one_launch(runner.batch, [items[i][2] for i in taken])  # type: ignore[arg-type]
    except Exception as err:  # every item it took is reported failed
        outcomes = [err] * len(taken)
    seconds = (time.perf_counter() - start) / max(len(taken), 1)
    advance(len(taken), f"{runner.name}: {len(taken)} problems in one launch")
    return {(i, runner.name): (o, seconds) for i, o in zip(taken, outcomes, strict=True)}
