"""Problems and outcomes as files, for runners that work in other processes.

``save_problems``/``load_problems`` and ``save_outcomes``/``load_outcomes``
write NumPy ``.npz`` (bfloat16 as its bit pattern, flagged) and the specs as
JSON: no pickle, so a worker process reads only arrays and validated specs.
``launch_problems``/``serve_problems`` are the two halves of a multi-process
runner built on them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from rmsnorm_core.parity._launch import launch
from rmsnorm_core.parity._problems import Outcome, Problem
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._json import loads_strict
from rmsnorm_core.spec._spec import RMSNormSpec

_PROBLEM_FIELDS = ("x", "scale", "bias", "dy", "residual")
_OUTCOME_FIELDS = ("y", "s", "dx", "dscale", "dbias")


def _put(arrays: dict[str, np.ndarray], key: str, value: np.ndarray | None) -> None:
    if value is None:
        return
    if value.dtype == ml_dtypes.bfloat16:
        arrays[f"{key}.bf16"] = np.zeros(0)
        value = value.view(np.uint16)
    arrays[key] = value


def _get(arrays: Any, key: str) -> np.ndarray | None:
    if key not in arrays:
        return None
    value = arrays[key]
    return value.view(ml_dtypes.bfloat16) if f"{key}.bf16" in arrays else value


def save_problems(folder: Path, problems: list[Problem]) -> None:
    """Write ``problems`` to ``folder`` (``problems.npz`` and ``problems.json``)."""
    arrays: dict[str, np.ndarray] = {}
    for i, p in enumerate(problems):
        for name in _PROBLEM_FIELDS:
            _put(arrays, f"{i}.{name}", getattr(p, name))
    np.savez(folder / "problems.npz", **arrays)
    (folder / "problems.json").write_text(json.dumps([p.spec.to_dict() for p in problems]))


def load_problems(folder: Path) -> list[Problem]:
    """Read what :func:`save_problems` wrote."""
    arrays = np.load(folder / "problems.npz", allow_pickle=False)
    specs = loads_strict((folder / "problems.json").read_bytes(), "problems.json")
    return [
        Problem(
            RMSNormSpec.from_dict(spec), **{n: _get(arrays, f"{i}.{n}") for n in _PROBLEM_FIELDS}
        )
        for i, spec in enumerate(specs)
    ]


def save_outcomes(folder: Path, outcomes: list[Outcome]) -> None:
    """Write ``outcomes`` to ``folder / "outcomes.npz"``."""
    arrays: dict[str, np.ndarray] = {}
    for i, o in enumerate(outcomes):
        grads = o.grads or (None, None, None)
        for name, value in zip(_OUTCOME_FIELDS, (o.y, o.s, *grads), strict=True):
            _put(arrays, f"{i}.{name}", value)
        if o.grads is not None:
            arrays[f"{i}.has_grads"] = np.zeros(0)
    np.savez(folder / "outcomes.npz", **arrays)


def load_outcomes(folder: Path, count: int) -> list[Outcome]:
    """Read what :func:`save_outcomes` wrote, ``count`` outcomes."""
    arrays = np.load(folder / "outcomes.npz", allow_pickle=False)
    out = []
    for i in range(count):
        y, s, *grads = (_get(arrays, f"{i}.{name}") for name in _OUTCOME_FIELDS)
        has = f"{i}.has_grads" in arrays
        out.append(Outcome(y, s, tuple(grads) if has else None))  # type: ignore[arg-type]
    return out


def launch_problems(
    module: str,
    problems: list[Problem],
    *,
    world: int,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> list[Outcome]:
    """Run ``problems`` in one ``world``-process launch of ``module`` and return rank 0's
    outcomes: the parent's half of the protocol whose rank half is :func:`serve_problems`.

    Args:
        module: the module each rank runs (``python -m module FOLDER``); its
            ``__main__`` calls :func:`serve_problems`.
        problems: the problems, written to a fresh temporary folder.
        world: how many processes.
        env: extra environment for the processes.
        timeout: seconds the whole group may take (see ``backends.launch``).
    """
    folder = Path(tempfile.mkdtemp(prefix="rmsnorm-problems-"))
    try:  # the problems, the ranks' folders and their output: removed whatever happens
        save_problems(folder, problems)
        ranks = folder / "ranks"
        done = launch(module, [str(folder)], world=world, timeout=timeout, env=env, folder=ranks)
        return load_outcomes(done.rank_folder(0), len(problems))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve_problems(folder: str | Path, run: Callable[[Problem], Outcome]) -> None:
    """A rank's half of :func:`launch_problems`: ``run`` every problem in ``folder`` (every
    rank runs all, collectives in step); rank 0 writes the outcomes to ``RMSNORM_OUT``.

    Raises:
        RMSNormError: a problem's run raised: the message names the problem (its place,
            x's dtype and shape, the spec's rules) and ends with the error, since the
            launch reports the failed rank's last line (its exception) for every problem
            of the launch.
    """
    problems = load_problems(Path(folder))
    outcomes = []
    for i, p in enumerate(problems):
        try:
            outcomes.append(run(p))
        except Exception as err:
            raise RMSNormError(
                f"problem {i + 1} of {len(problems)} ({_describe(p)}) raised "
                f"{type(err).__name__}: {err}"
            ) from err
    if int(os.environ["RMSNORM_RANK"]) == 0:
        save_outcomes(Path(os.environ["RMSNORM_OUT"]), outcomes)


def _describe(p: Problem) -> str:
    spec = p.spec
    residual = ", residual" if p.residual is not None else ""
    return (
        f"x {p.x.dtype} {tuple(p.x.shape)}{residual}; eps {spec.eps}, "
        f"{spec.cast_order}, output {spec.output_dtype}, offset {spec.scale_offset}"
    )
