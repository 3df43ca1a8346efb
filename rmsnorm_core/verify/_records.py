"""The rows of ``rmsnorm verify``'s report: one :class:`Record` per check.

A record says what was checked (runner, spec, case, dtype), how it ended, the
numbers it was judged by (the tolerance table's entry, the largest errors, the
share of elements equal to the reference bit for bit) and a digest of the
output's bytes, so two reports can be compared check by check
(``rmsnorm verify --baseline``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from rmsnorm_core.io._digest import array_digest
from rmsnorm_core.oracle._tolerance import TOLERANCES, compare
from rmsnorm_core.parity._problems import Problem
from rmsnorm_core.spec._plan import dtype_plan


@dataclasses.dataclass
class Record:
    """One row of the report."""

    spec: str
    spec_json: dict
    case: str
    dtype: str
    shape: list
    backend: str
    check: str  # "forward", "gradients", "vs <backend>" (cross-framework), "bits"
    status: str  # "pass", "fail", "skipped"
    max_abs: float | None = None  # None: nothing was compared (a crash, a skip, bits)
    max_rel: float | None = None
    seconds: float = 0.0
    reason: str = ""
    # forward: the share of elements equal to the reference bit for bit; "bits" rows:
    # the share of an upstream's elements equal to ours
    bit_share: float | None = None
    tolerance: dict | None = None  # {"key", "rtol", "atol"} of the table entry applied
    digest: str | None = None  # SHA-256 of the output's bytes (forward: y and s; grads)


def _tolerance(key: str | None, gradient: bool = False) -> dict | None:
    if key is None:
        return None
    tol = TOLERANCES[key]
    out = {"key": key, "rtol": tol.rtol, "atol": tol.atol}
    if gradient:  # compare(gradient=True): atol grows to rtol * max|expected|
        out["atol"] = f"max({tol.atol}, rtol * max|expected|)"
    return out


def failure(base: dict, name: str, err: Exception) -> Record:
    return Record(
        **base,
        backend=name,
        check="forward",
        status="fail",
        reason=f"{type(err).__name__}: {err}"[:300],
    )


def record(
    base: dict,
    backend: str,
    check: str,
    result: Any,
    seconds: float = 0.0,
    key: str | None = None,
    out_digest: str | None = None,
) -> Record:
    """A record from a ``Check`` or ``Comparison`` (both have passed/max_abs/max_rel/reason;
    a ``Check`` also its tolerance key and bit share)."""
    key = getattr(result, "key", key)
    return Record(
        **base,
        backend=backend,
        check=check,
        status="pass" if result.passed else "fail",
        max_abs=result.max_abs if key is not None else None,
        max_rel=result.max_rel if key is not None else None,
        seconds=seconds,
        reason=result.reason,
        bit_share=getattr(result, "bit_share", None),
        tolerance=_tolerance(key, gradient=check == "gradients"),
        digest=out_digest,
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> float:
    """The share of elements equal bit for bit (NaN equal to NaN); 1.0 when empty."""
    a, b = np.asarray(a).astype(np.float64), np.asarray(b).astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return float(same.mean()) if same.size else 1.0


def self_checks(
    base: dict,
    primary: dict[str, tuple[str, np.ndarray]],
    others: list[tuple[str, Any, np.ndarray]],
) -> list[Record]:
    """Each runner's output against its backend's first runner's (the eager path), bit for
    bit, recorded as check ``self`` under the runner's name. A difference fails, unless the
    runner declares why its runtime computes other bits (``Runner.bit_variance``): then it
    is ``varies`` with the share."""
    out = []
    for backend, runner, theirs in others:
        first, ours = primary[backend]
        if ours.dtype != theirs.dtype or ours.shape != theirs.shape:
            reason = f"gives {theirs.dtype}{list(theirs.shape)}, {first} {ours.dtype}"
            out.append(Record(**base, backend=runner.name, check="self", status="fail",
                              reason=reason))  # fmt: skip
            continue
        share = same_bits(ours, theirs)
        status, reason = "pass", ""
        if share < 1.0:
            reason = f"{share:.4%} of elements identical to {first}'s"
            status = "varies" if runner.bit_variance else "fail"
            reason += f" ({runner.bit_variance})" if runner.bit_variance else ""
        out.append(Record(**base, backend=runner.name, check="self", status=status,
                          reason=reason, bit_share=share))  # fmt: skip
    return out


def bit_checks(
    base: dict, primary: dict[str, np.ndarray], upstream: list[tuple[str, str, np.ndarray]]
) -> list[Record]:
    """Each upstream runner's output against its backend's own, bit for bit (NaN equal
    to NaN): passes only when every element is identical."""
    out = []
    for backend, name, theirs in upstream:
        ours = primary.get(backend)
        if ours is None:
            continue
        label = f"{backend} = {name.removeprefix('upstream-')}"  # e.g. "torch = hf-llama"
        if ours.dtype != theirs.dtype or ours.shape != theirs.shape:
            reason = f"{name} gives {theirs.dtype}{list(theirs.shape)}, ours {ours.dtype}"
            out.append(Record(**base, backend=label, check="bits", status="fail", reason=reason))
            continue
        share = same_bits(ours, theirs)
        status = "pass" if share == 1.0 else "fail"
        reason = "" if status == "pass" else f"{share:.4%} of elements identical to ours"
        out.append(
            Record(**base, backend=label, check="bits", status=status, reason=reason,
                   bit_share=share, digest=array_digest(theirs))  # upstream's bits, for --baseline
        )  # fmt: skip
    return out


def cross_checks(base: dict, p: Problem, outputs: dict[str, np.ndarray]) -> list[Record]:
    """The first backend's output against each other backend's, under the tolerance table."""
    names = list(outputs)
    if len(names) < 2:
        return []
    key = dtype_plan(p.spec, p.x.dtype, None if p.scale is None else p.scale.dtype).precision
    first = names[0]
    return [  # recorded under the other backend's name: "flax", check "vs torch"
        record(base, other, f"vs {first}", compare(outputs[other], outputs[first], key), 0.0, key)
        for other in names[1:]
    ]
