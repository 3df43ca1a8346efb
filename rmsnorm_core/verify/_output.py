"""What ``rmsnorm verify`` prints after the run, in order: the per-spec summary, the
runner x dtype table, the skipped rows, the legend, the failing checks, the counts, the
baseline comparison, the files written and, last, the verdict (the exit status and
why)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from rmsnorm_core.verify import _baseline
from rmsnorm_core.verify._summary import (
    SPEC_LEGEND,
    counts_line,
    failure_lines,
    spec_table,
    verdict,
)
from rmsnorm_core.verify._table import LEGEND, skipped_table, table


def render(
    matrix: Any,
    skips: Sequence[Any],
    diff: Any,
    args: argparse.Namespace,
    seconds: float,
    written: Sequence[str] = (),
) -> tuple[int, str]:
    """``(exit status, the text)`` of a run: ``matrix`` is the run's ``Matrix``, ``skips``
    its ``Skip`` rows, ``diff`` the baseline's ``Diff`` or None; ``args`` gives
    ``verbose`` and ``allow_bit_changes``; ``written`` names the files written."""
    records = matrix.records
    allow = bool(getattr(args, "allow_bit_changes", False))
    parts = [spec_table(records), SPEC_LEGEND, table(records)]
    if skips:
        parts.append(skipped_table(skips))
    parts.append(LEGEND)
    failures = failure_lines(records, bool(getattr(args, "verbose", False)))
    if failures:
        parts.append("\n".join(failures))
    count = counts_line(records, matrix.calls, matrix.not_applicable, len(skips))
    parts.append(f"{count}, in {seconds:.0f} s")
    if diff is not None:
        parts.append(_baseline.describe(diff, allow))
    code, why = verdict(records, len(skips), diff, allow)
    tail = [*written, why]
    return code, "\n\n".join(parts) + "\n\n" + "\n".join(tail)


def print_results(
    matrix: Any,
    skips: Sequence[Any],
    diff: Any,
    args: argparse.Namespace,
    seconds: float,
    written: Sequence[str] = (),
) -> int:
    """Print :func:`render`'s text; return its exit status."""
    code, text = render(matrix, skips, diff, args, seconds, written)
    print(text)
    return code
