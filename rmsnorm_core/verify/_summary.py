"""``rmsnorm verify``'s per-spec summary, its failing-check lines and its verdict.

- :func:`spec_table`: one row per spec (preset) and one column per dtype: PASS or how
  many checks failed, and the worst ratio of error to tolerance, so "did gemma pass?"
  is read off the screen.
- :func:`failure_lines`: one line per failing check, naming the spec, case, dtype,
  shape, runner, what it was compared with and the element that failed.
- :func:`verdict`: the last line of the run, which says why the exit status is what it
  is (failed checks, a baseline's regressions or bit changes, or all passed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rmsnorm_core.verify._table import DTYPES, kind

SPEC_LEGEND = """\
Per spec and dtype: PASS, or FAIL n/m (n of the cell's m checks failed), then the worst
error as a fraction of its tolerance, max |y - ref| / (atol + rtol * |ref|) over the
cell's fwd, grad and vs checks (1.00 is the limit; "-": no check with a number)."""


def _ratio(rows: Sequence[Any]) -> str:
    ratios = [r.ratio for r in rows if r.ratio is not None]
    if not ratios:
        return "-"
    top = max(ratios)
    return "inf" if math.isinf(top) else f"{top:.2f}"


def spec_table(records: Sequence[Any]) -> str:
    """Specs as rows, dtypes as columns (see the module docstring)."""
    cells: dict[tuple[str, str], list] = {}
    for r in records:
        cells.setdefault((r.spec, r.dtype), []).append(r)
    specs = list(dict.fromkeys(r.spec for r in records))
    present = {r.dtype for r in records}
    dtypes = [d for d in DTYPES if d in present] + sorted(present - set(DTYPES))
    lines = []
    for spec in specs:
        row = [spec]
        for dtype in dtypes:
            rows = cells.get((spec, dtype), [])
            failed = sum(r.status == "fail" for r in rows)
            head = "-" if not rows else "PASS" if not failed else f"FAIL {failed}/{len(rows)}"
            row.append(f"{head} {_ratio(rows)}" if rows else "-")
        lines.append(row)
    head = ["spec", *dtypes]
    widths = [max(len(x[i]) for x in [head, *lines]) for i in range(len(head))]
    text = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in [head, *lines]]  # fmt: skip
    return "\n".join(text)


def failure_line(r: Any) -> str:
    """``FAIL <spec> <case> <dtype>[shape] <runner> <check>: <reason>``; the reason names
    the worst (or first differing) element."""
    what = kind(r) if r.against == "reference" else f"{kind(r)} {r.against}"
    return f"FAIL {r.spec} {r.case} {r.dtype}{r.shape} {r.runner} {what}: {r.reason}"


def failure_lines(records: Sequence[Any], verbose: bool, shown: int = 20) -> list[str]:
    """Every failing check's line with ``verbose``, else the first ``shown`` and a count
    of the rest."""
    failed = [r for r in records if r.status == "fail"]
    if verbose or len(failed) <= shown:
        return [failure_line(r) for r in failed]
    rest = len(failed) - shown
    return [*(failure_line(r) for r in failed[:shown]), f"... and {rest} more (-v lists all)"]


def counts_line(records: Sequence[Any], calls: int, declined: int, skipped: int) -> str:
    """What was run and checked: runner calls (the progress counter's unit), the checks
    they gave (a call gives a forward check, a gradient check where the runner has
    autograd, and cross-backend and bit checks follow), and the runners skipped."""
    passed = sum(r.status == "pass" for r in records)
    failed = sum(r.status == "fail" for r in records)
    varies = sum(r.status == "varies" for r in records)
    vary_note = f", {varies} vary where their runtime declares it" if varies else ""
    declined_note = f" ({declined} not applicable)" if declined else ""
    skip_note = f"{skipped} skipped (runners or backends)" if skipped else "nothing skipped"
    return (
        f"{calls} runner calls{declined_note} gave {len(records)} checks: {passed} passed, "
        f"{failed} failed{vary_note}; {skip_note}"
    )


def verdict(
    records: Sequence[Any], skipped: int, diff: Any, allow_bit_changes: bool
) -> tuple[int, str]:
    """``(exit status, the line that says why)``: 1 when a check failed, or, against a
    baseline (``diff``, None without one), on a regression or a bit change that is
    not allowed, or when the baseline holds none of this run's checks (a comparison
    that compared nothing must not read as "nothing regressed"); else 0. Against a
    baseline the line says how many checks were compared with it."""
    failed = sum(r.status == "fail" for r in records)
    total = len(records)
    skip_note = f" ({skipped} skipped: not run, not passed)" if skipped else ""
    if failed:
        return 1, f"exit 1: {failed} of {total} checks failed{skip_note}"
    if diff is not None and diff.failed(allow_bit_changes):
        parts = []
        if diff.count("regression"):
            parts.append(f"{diff.count('regression')} regression(s)")
        bits = diff.count("bits changed")
        if bits and not allow_bit_changes:
            parts.append(f"{bits} check(s) whose output bits changed (--allow-bit-changes "
                         "accepts them)")  # fmt: skip
        return 1, (f"exit 1: all {total} checks passed, but against the baseline: "
                   f"{', '.join(parts)}")  # fmt: skip
    against = ""
    if diff is not None:
        compared = total - len(diff.only_now)
        if total and not compared:
            return 1, (f"exit 1: all {total} checks passed, but the baseline has none of "
                       "them: nothing was compared (it is a run of other specs, cases or "
                       "runners)")  # fmt: skip
        unpaired = f"; {total - compared} only in this run" if compared < total else ""
        against = (f" and nothing regressed in the {compared} compared with the "
                   f"baseline{unpaired}")  # fmt: skip
    varies = sum(r.status == "varies" for r in records)
    if varies:  # declared by their runners (batch_variance, bit_variance): not failures
        return 0, (f"exit 0: no check failed: {total - varies} passed, {varies} vary where "
                   f"their runtime declares it{against}{skip_note}")  # fmt: skip
    return 0, f"exit 0: all {total} checks passed{against}{skip_note}"
