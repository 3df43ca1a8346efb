"""The rows of ``rmsnorm verify``'s report: one :class:`Record` per check.

A record says what was checked (backend, runner, spec, case, dtype, and what it
was compared with), how it ended, the numbers it was judged by (the tolerance
table's entry, the largest errors and their ratio to the tolerance, the share of
elements equal bit for bit where a floor judged it) and a digest of the output's
bytes, so two reports can be compared check by check (``rmsnorm verify
--baseline``). A :class:`Skip` is a runner or backend that did not run.
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
    """One check of the report: what ran, against what, how it ended and the numbers
    it was judged by. ``docs/reference/verify-report.md`` documents every field."""

    spec: str
    spec_json: dict
    case: str
    dtype: str
    shape: list
    backend: str  # the backend the runner belongs to ("torch", "flax")
    runner: str  # the runner whose output is judged ("torch-eager", "upstream-hf-llama")
    check: str  # "forward", "gradients", "cross" (another backend's output), "bits"
    against: str  # "reference" (float64), or the runner whose output it is compared with
    status: str  # "pass", "fail", "varies" (a difference its runner declares: batch, self)
    max_abs: float | None = None  # None: nothing was compared (a crash, bits)
    max_rel: float | None = None
    ratio: float | None = None  # worst |error| / (atol + rtol * |expected|); <= 1 passes
    # the runner call's wall time, on its forward record; None on the records that
    # share that call (gradients) or ran none (cross, bits)
    seconds: float | None = None
    reason: str = ""
    bit_share: float | None = None  # share equal bit for bit; only where a floor judged it
    bit_share_required: float | None = None  # that floor (0.98 half precision, 1.0 bits)
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


def failure(
    base: dict,
    backend: str,
    runner: str,
    check: str,
    reason: str,
    *,
    against: str = "reference",
    seconds: float | None = None,
) -> Record:
    """The failed record of a planned check that has no numbers: its runner raised (the
    error is the reason), or a runner it is compared with did."""
    return Record(**base, backend=backend, runner=runner, check=check, against=against,
                  status="fail", seconds=seconds, reason=reason[:300])  # fmt: skip


def record(
    base: dict,
    backend: str,
    runner: str,
    check: str,
    result: Any,
    *,
    against: str = "reference",
    seconds: float | None = None,
    key: str | None = None,
    out_digest: str | None = None,
) -> Record:
    """A record from a ``Check`` or ``Comparison`` (both have passed/max_abs/max_rel/reason
    and a ratio; a ``Check`` also its tolerance key and the bit share it was judged by)."""
    key = getattr(result, "key", key)
    required = getattr(result, "bit_share_required", None)
    return Record(
        **base,
        backend=backend,
        runner=runner,
        check=check,
        against=against,
        status="pass" if result.passed else "fail",
        max_abs=result.max_abs if key is not None else None,
        max_rel=result.max_rel if key is not None else None,
        ratio=result.ratio if key is not None else None,
        seconds=seconds,
        reason=result.reason,
        bit_share=getattr(result, "bit_share", None) if required is not None else None,
        bit_share_required=required,
        tolerance=_tolerance(key, gradient=check == "gradients"),
        digest=out_digest,
    )


def same_bits(a: np.ndarray, b: np.ndarray) -> float:
    """The share of elements equal bit for bit (NaN equal to NaN); 1.0 when empty."""
    return float(_same(a, b).mean()) if np.size(a) else 1.0


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a).astype(np.float64), np.asarray(b).astype(np.float64)
    return (a == b) | (np.isnan(a) & np.isnan(b))


def self_check(
    base: dict, backend: str, runner: Any, first: str, ours: np.ndarray, theirs: np.ndarray
) -> Record:
    """``runner``'s output (``theirs``) against its backend's first runner's (``first``,
    ``ours``: the eager path), bit for bit: check ``self``. A difference fails, unless
    the runner declares why its runtime computes other bits (``Runner.bit_variance``):
    then it is ``varies`` with the share."""
    head = dict(**base, backend=backend, runner=runner.name, check="self", against=first)
    if ours.dtype != theirs.dtype or ours.shape != theirs.shape:
        reason = f"gives {theirs.dtype}{list(theirs.shape)}, {first} {ours.dtype}"
        return Record(**head, status="fail", reason=reason, bit_share_required=1.0)
    share = same_bits(ours, theirs)
    status, reason = "pass", ""
    if share < 1.0:
        reason = f"{share:.4%} of elements identical to {first}'s"
        status = "varies" if runner.bit_variance else "fail"
        reason += f" ({runner.bit_variance})" if runner.bit_variance else ""
    return Record(**head, status=status, reason=reason, bit_share=share,
                  bit_share_required=1.0, digest=array_digest(theirs))  # fmt: skip


def bit_check(
    base: dict, backend: str, name: str, ours_name: str, ours: np.ndarray, theirs: np.ndarray
) -> Record:
    """Upstream runner ``name``'s output (``theirs``) against its backend's own
    (``ours_name``, ``ours``), bit for bit (NaN equal to NaN): passes only when every
    element is identical."""
    head = dict(**base, backend=backend, runner=name, check="bits", against=ours_name)
    if ours.dtype != theirs.dtype or ours.shape != theirs.shape:
        reason = f"{name} gives {theirs.dtype}{list(theirs.shape)}, ours {ours.dtype}"
        return Record(**head, status="fail", reason=reason, bit_share_required=1.0)
    same = _same(ours, theirs)
    share = float(same.mean()) if same.size else 1.0
    status = "pass" if share == 1.0 else "fail"
    reason = ""
    if status == "fail":
        a, b = ours.astype(np.float64), theirs.astype(np.float64)
        first = [int(i) for i in np.argwhere(~same)[0]]
        reason = (
            f"{share:.4%} of elements identical to ours; first difference at {first}: "
            f"{float(b[tuple(first)])!r} where ours is {float(a[tuple(first)])!r}"
        )
    return Record(**head, status=status, reason=reason, bit_share=share, bit_share_required=1.0,
                  digest=array_digest(theirs))  # upstream's bits, for --baseline  # fmt: skip


def cross_check(
    base: dict, p: Problem, backend: str, runner: str, first_runner: str,
    first: np.ndarray, theirs: np.ndarray,
) -> Record:  # fmt: skip
    """Another backend's first runner's output (``theirs``) against the first backend's
    (``first_runner``, ``first``), under the tolerance table: check ``cross``."""
    key = dtype_plan(p.spec, p.x.dtype, None if p.scale is None else p.scale.dtype).precision
    result = compare(theirs, first, key)
    return record(base, backend, runner, "cross", result, against=first_runner, key=key)


@dataclasses.dataclass
class Skip:
    """A runner or backend that did not run (never counted as passed).

    Attributes:
        name: the runner (``upstream-hf-llama``) or backend (``flax``).
        what: ``"runner"`` or ``"backend"`` (a backend's every runner).
        why: the reason, e.g. ``needs transformers``.
        install: the command that installs what it needs, or "" where none does.
    """

    name: str
    what: str
    why: str
    install: str = ""
