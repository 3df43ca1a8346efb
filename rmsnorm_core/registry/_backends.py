"""The backend registry, discovered by entry point (the contract is written in the
public module's docstring, :mod:`rmsnorm_core.backends`). einops' lazily-found
backends are the model.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from rmsnorm_core._install import not_installed
from rmsnorm_core.bench._bench import Benchmark, Sweep
from rmsnorm_core.bench._bench_gpu import GpuCase
from rmsnorm_core.parity._case_table import Case
from rmsnorm_core.parity._problems import Outcome, Problem, upstream_takes
from rmsnorm_core.registry._capabilities import CheckpointFormat, Exporter
from rmsnorm_core.spec._errors import RMSNormError, RMSNormTypeError

#: The entry-point group backends register under.
ENTRY_POINT_GROUP = "rmsnorm_bridge.backends"
"""The entry-point group a backend package registers its :class:`Backend` under."""


class NotApplicable(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a runner for a problem outside what it covers (nothing is recorded)."""


@dataclasses.dataclass(frozen=True)
class Runner:
    """One way a backend runs the spec: a row of ``rmsnorm verify``'s matrix.

    Attributes:
        name: the id users type (``--backend torch-eager``): lowercase,
            digits and ``-``, unique across backends.
        run: turns a problem into an :class:`Outcome` (or raises
            :class:`NotApplicable`).
        quick: runs in ``rmsnorm verify --quick``.
        only_tag: runs only the cases carrying this tag (costly runners:
            ``"export"`` or ``"compile"``); None runs every case.
        residual: covers residual problems.
        empty: covers inputs with no elements.
        batch: runs many problems at once (a multi-process runner starts its
            processes once per run); ``rmsnorm verify`` then calls it with
            every problem the runner takes instead of ``run`` per problem.
        distributed: runs only when asked for (``rmsnorm verify --distributed``).
        upstream: the preset whose upstream implementation this runner runs
            (``torch.nn.RMSNorm``, a Hugging Face norm, ``flax.linen.RMSNorm``);
            besides its reference checks, its output is compared bit for bit with
            its backend's own (the first runner's), a ``bits`` row of the report.
        requires: modules the runner imports beyond its backend's framework
            (``onnxruntime``); where one is missing the runner is skipped, saying
            which, never failed.
        batch_variance: why this runtime's output may depend on the batch a row is in
            (a compiler that builds a kernel per shape); then a ``batch`` check that
            finds a difference is reported as ``varies`` with its share, not failed.
            Empty (the default): a difference fails.
        gradients: returns gradients (``Outcome.grads``) for every problem with
            elements: ``rmsnorm verify`` then plans a ``gradients`` check for each
            such call (a call that returns none fails it). False (the default): a
            forward-only path (an exported artifact, an upstream module); a call that
            returns gradients anyway fails, since they would go unjudged.
        bit_variance: why this runtime computes other bits than its backend's first
            runner (the eager path) on the same call (a fused kernel of its own); then
            its ``self`` check reports a difference as ``varies`` with its share.
            Empty (the default): the same bits are required.
    """

    name: str
    run: Callable[[Problem], Outcome]
    quick: bool = True
    only_tag: str | None = None
    residual: bool = True
    empty: bool = True
    batch: Callable[[list[Problem]], list[Outcome]] | None = None
    distributed: bool = False
    upstream: str | None = None
    requires: tuple[str, ...] = ()
    batch_variance: str = ""
    gradients: bool = False
    bit_variance: str = ""

    def __post_init__(self) -> None:
        allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-")
        if not self.name or not set(self.name) <= allowed:
            raise RMSNormError(
                f"runner name {self.name!r} is not accepted; use lowercase letters, digits "
                "and '-' (e.g. 'torch-eager')"
            )

    def takes(self, case: Case, problem: Problem, *, quick: bool = False) -> bool:
        """Whether this runner runs ``problem`` of ``case``: tags, coverage and, for an
        upstream runner, a call its upstream makes (``upstream_takes``). What a run
        calls, and what it lists as skipped, is decided here alone."""
        if quick and not self.quick:
            return False
        if self.only_tag is not None and self.only_tag not in case.tags:
            return False
        if problem.residual is not None and not self.residual:
            return False
        if self.upstream is not None and not upstream_takes(problem, self.upstream):
            return False
        return self.empty or problem.x.size > 0

    @classmethod
    def distributed_batch(
        cls, name: str, batch: Callable[[list[Problem]], list[Outcome]], **declared: str
    ) -> Runner:
        """A multi-process runner: ``batch`` runs every problem in one launch (e.g. through
        ``testing.launch_problems``); it runs only under ``rmsnorm verify --distributed``,
        not in ``--quick``, skips empty inputs (nothing to shard) and returns gradients."""

        def one(p: Problem) -> Outcome:
            return batch([p])[0]

        return cls(name, one, quick=False, empty=False, batch=batch, distributed=True,
                   gradients=True, **declared)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Backend:
    """What one framework package offers to the CLI and the test suite.

    Everything but ``name`` is optional; the benchmark fields are built lazily
    (their setups import the framework only when run).

    Attributes:
        name: the backend's name, e.g. ``"torch"`` (``--backend torch``).
        runners: the paths ``rmsnorm verify`` checks, e.g. ``torch-eager``.
        formats: the checkpoint formats ``rmsnorm convert`` reads and writes.
        exporters: the artifacts ``rmsnorm export`` writes.
        benchmarks: ``() -> cases`` of ``rmsnorm bench``'s ratio table.
        sweeps: ``() -> sweeps`` of ``rmsnorm bench``'s row-length plots.
        gpu_benchmarks: ``(shapes, dtypes, smoke) -> cases`` of
            ``rmsnorm bench --gpu``.
        infer: ``(object, block shape or None) -> spec``, or None when the
            object is not this framework's (``rmsnorm infer``).
        details: ``() -> {name: value}`` for ``rmsnorm verify``'s versions: what the
            backend runs that no package version tells (e.g. which CPU kernel).
        requires: the modules the backend's framework is (``("jax", "flax")``).
            Its entry point imports none of them (declare capabilities with
            :func:`rmsnorm_core.backends.lazy`), so where one is not installed the
            backend is listed by :func:`unavailable`, never loaded half-working.
    """

    name: str
    runners: Sequence[Runner] = ()
    formats: Sequence[CheckpointFormat] = ()
    exporters: Sequence[Exporter] = ()
    benchmarks: Callable[[], Sequence[Benchmark]] = lambda: ()
    sweeps: Callable[[], Sequence[Sweep]] = lambda: ()
    gpu_benchmarks: Callable[[Any, Any, bool], Sequence[GpuCase]] = lambda sh, dt, smoke: ()
    infer: Callable[[Any, Any], Any] = lambda obj, shape: None
    details: Callable[[], dict[str, str]] = lambda: {}
    requires: tuple[str, ...] = ()


_LOCK = threading.Lock()
_LOADED: dict[str, Backend] | None = None
_UNAVAILABLE: dict[str, str] = {}
_EXTRA: dict[str, Backend] = {}


def _load_entry_points() -> dict[str, Backend]:
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            loaded: dict[str, Backend] = {}
            for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
                try:
                    backend = ep.load()
                except ImportError as err:
                    _UNAVAILABLE[ep.name] = not_installed([(err.name or str(err)).split(".")[0]])
                    continue
                if not isinstance(backend, Backend):
                    _UNAVAILABLE[ep.name] = f"entry point {ep.value!r} is not a Backend"
                    continue
                missing = missing_modules(backend.requires)
                if missing:  # found without importing it: the entry point imports no framework
                    _UNAVAILABLE[ep.name] = not_installed(missing)
                    continue
                loaded[ep.name] = backend
            _LOADED = loaded
        return _LOADED


def register_backend(backend: Backend) -> None:
    """Add ``backend`` in this process (after those found by entry point).

    Raises:
        RMSNormError: a backend of that name, or a runner of one of its
            runners' names, is already registered.
    """
    if not isinstance(backend, Backend):
        raise RMSNormTypeError(f"backend must be a Backend, got {type(backend).__name__}")
    current = backends()
    if backend.name in current:
        raise RMSNormError(f"a backend named {backend.name!r} is already registered")
    taken = {r.name for b in current.values() for r in b.runners}
    clash = sorted(taken & {r.name for r in backend.runners})
    if clash:
        raise RMSNormError(f"backend {backend.name!r}: runner name(s) {clash} are already taken")
    with _LOCK:
        _EXTRA[backend.name] = backend


def unregister_backend(name: str) -> None:
    """Remove a backend added by :func:`register_backend` (entry points stay)."""
    with _LOCK:
        if name not in _EXTRA:
            raise RMSNormError(f"no backend named {name!r} was registered in-process")
        del _EXTRA[name]


def backends() -> dict[str, Backend]:
    """Every available backend by name: entry points (sorted by name), then in-process ones."""
    found = dict(_load_entry_points())
    with _LOCK:
        found.update(_EXTRA)
    return found


def missing_modules(names: Sequence[str]) -> list[str]:
    """Those of ``names`` (top-level modules) that are not installed, found without
    importing any: what a backend's or a runner's ``requires`` lacks."""
    return [m for m in names if importlib.util.find_spec(m) is None]


def unavailable() -> dict[str, str]:
    """Entry-point backends that could not be loaded, with the reason."""
    _load_entry_points()
    return dict(_UNAVAILABLE)


def not_installed_hint() -> str:
    """`` (backends not installed: flax)`` for an error message, or "" when all load."""
    missing = unavailable()
    return f" (backends not installed: {', '.join(sorted(missing))})" if missing else ""


def runners() -> dict[str, Runner]:
    """Every runner of every available backend, by name, in registration order."""
    return {r.name: r for b in backends().values() for r in b.runners}
