"""The cross-framework parity matrix behind ``rmsnorm verify``.

Specs x dtypes x axes cases x shapes x backends; each backend's forward (and
gradients, where it has them) is compared with the float64 reference under
the tolerance table, and Flax's output with torch's. A backend whose
framework is not installed is reported as skipped, never as passed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ._checkpoint import NeutralLayer
from ._plan import dtype_plan, sample_shape
from ._problems import Problem, check_forward, check_gradients, make_problem
from ._spec import RMSNormSpec
from ._tolerance import compare

DTYPES = ("float32", "bfloat16", "float16")
# (case, overrides, shape, residual): batch dims 5 and 3, never the export sample's 2.
CASES = (
    ("trailing", {}, (5, 3, 64), False),
    ("non-trailing", {"axes": (1,)}, (5, 16, 3), False),
    ("several-axes", {"axes": (-2, -1)}, (5, 6, 10), False),
    ("partial", {"partial": 0.5}, (5, 3, 64), False),
    ("residual", {}, (5, 3, 64), True),
    ("empty-batch", {}, (0, 3, 64), False),
)
# The deployment backends cost seconds per problem (compiling, exporting), so to
# keep the default run under three minutes they cover these cases only; the
# test suite covers the rest. "checkpoint" problems (--weights) run everywhere.
LIMITED_CASES = {
    "torch.compile": ("trailing",),
    "ORT dynamo-18": ("trailing",),
    "ORT dynamo-23": ("trailing",),
    "torch.export": ("trailing", "non-trailing"),
    "ORT torchscript-17": ("trailing", "non-trailing"),
}
QUICK_SKIPS = ("torch.compile", "torch.export", "ORT dynamo-18", "ORT dynamo-23")


@dataclasses.dataclass
class Record:
    """One row of the report."""

    spec: str
    spec_json: dict
    case: str
    dtype: str
    shape: list
    backend: str
    check: str  # "forward", "gradients", "flax vs torch"
    status: str  # "pass", "fail", "skipped"
    max_abs: float = 0.0
    max_rel: float = 0.0
    seconds: float = 0.0
    reason: str = ""


def load_backends(names: Iterable[str] | None = None) -> tuple[dict[str, Callable], dict[str, str]]:
    """Import the framework backends; return (available, skipped-with-reason)."""
    available: dict[str, Callable] = {}
    skipped: dict[str, str] = {}
    for module, label in (
        ("rmsnorm_flax._verify_backends", ("flax linen (jit)", "flax nnx")),
        ("rmsnorm_torch._verify_backends", None),
    ):
        try:
            import importlib

            available.update(importlib.import_module(module).backends())
        except ImportError as err:
            for name in label or (
                "torch eager",
                "TorchScript",
                "torch.compile",
                "torch.export",
                "ORT torchscript-17",
                "ORT dynamo-18",
                "ORT dynamo-23",
            ):
                skipped[name] = f"not installed ({err.name})"
    if names is not None:
        wanted = set(names)
        available = {k: v for k, v in available.items() if k in wanted}
        skipped = {k: v for k, v in skipped.items() if k in wanted}
    return available, skipped


def problems_for(specs: dict[str, RMSNormSpec], quick: bool) -> list[tuple[str, str, Problem]]:
    """(spec label, case, problem) for every spec, dtype and case."""
    out = []
    dtypes = DTYPES[:2] if quick else DTYPES
    cases = CASES[:2] if quick else CASES
    for label, spec in specs.items():
        for dtype in dtypes:
            for i, (case, overrides, shape, residual) in enumerate(cases):
                case_spec = spec.replace(**overrides)
                out.append(
                    (label, case, make_problem(case_spec, dtype, shape, seed=i, residual=residual))
                )
    return out


def problems_for_weights(
    layers: dict[str, NeutralLayer], quick: bool
) -> list[tuple[str, str, Problem]]:
    """One problem per layer and dtype, carrying the checkpoint's own parameters."""
    out = []
    for name, layer in layers.items():
        shape = sample_shape(layer.spec, layer.param_shape)
        for dtype in DTYPES[:2] if quick else DTYPES:
            p = make_problem(layer.spec, dtype, shape, seed=len(out))
            out.append(
                (name, "checkpoint", dataclasses.replace(p, scale=layer.scale, bias=layer.bias))
            )
    return out


def _run(backend: Callable, problem: Problem) -> tuple[Any, float]:
    start = time.perf_counter()
    result = backend(problem)
    return result, time.perf_counter() - start


def _record(base: dict, backend: str, check: str, result: Any, seconds: float = 0.0) -> Record:
    """A record from a ``Check`` or ``Comparison`` (both have passed/max_abs/max_rel/reason)."""
    return Record(
        **base,
        backend=backend,
        check=check,
        status="pass" if result.passed else "fail",
        max_abs=result.max_abs,
        max_rel=result.max_rel,
        seconds=seconds,
        reason=result.reason,
    )


def run_matrix(
    items: list[tuple[str, str, Problem]],
    backends: dict[str, Callable],
    skipped: dict[str, str],
    quick: bool,
    progress: Callable[[int, int, str], None],
) -> list[Record]:
    """Run every backend on every problem; return the records."""
    records: list[Record] = []
    total = len(items)
    for done, (label, case, p) in enumerate(items, 1):
        dtype = p.x.dtype.name
        base = dict(
            spec=label, spec_json=p.spec.to_dict(), case=case, dtype=dtype, shape=list(p.x.shape)
        )
        outputs: dict[str, np.ndarray] = {}
        for name, backend in backends.items():
            if quick and name in QUICK_SKIPS:
                continue
            if case != "checkpoint" and case not in LIMITED_CASES.get(name, (case,)):
                continue
            progress(done, total, f"{name} {dtype} {label} {case}")
            try:
                (y, s, grads), secs = _run(backend, p)
            except Exception as err:  # reported, never hidden: a crash is a failure
                if type(err).__name__ == "NotApplicable":
                    continue
                records.append(
                    Record(
                        **base,
                        backend=name,
                        check="forward",
                        status="fail",
                        reason=f"{type(err).__name__}: {str(err)[:300]}",
                    )
                )
                continue
            outputs[name] = y
            records.append(_record(base, name, "forward", check_forward(p, y, s), secs))
            if grads is not None:
                records.append(_record(base, name, "gradients", check_gradients(p, *grads)))
        if "flax linen (jit)" in outputs and "torch eager" in outputs:
            key = dtype_plan(
                p.spec, p.x.dtype, None if p.scale is None else p.scale.dtype
            ).precision
            c = compare(outputs["torch eager"], outputs["flax linen (jit)"], key)
            records.append(_record(base, "flax vs torch", "flax vs torch", c))
    for name, why in skipped.items():
        records.append(
            Record(
                spec="*",
                spec_json={},
                case="*",
                dtype="*",
                shape=[],
                backend=name,
                check="forward",
                status="skipped",
                reason=why,
            )
        )
    return records
