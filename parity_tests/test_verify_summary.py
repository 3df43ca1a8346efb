"""``rmsnorm verify``'s per-spec summary, table columns and verdict, from records built
directly (issue 32 items 1-3): what each column aggregates, and the last line."""

from __future__ import annotations

import re
import types

import numpy as np
import pytest

from rmsnorm_core.oracle._tolerance import ROUNDING_AGREEMENT, TOLERANCES, compare
from rmsnorm_core.verify._records import Record
from rmsnorm_core.verify._summary import failure_lines, spec_table, verdict
from rmsnorm_core.verify._table import table


def rec(spec="gemma", dtype="float32", runner="torch-eager", check="forward", **kw) -> Record:
    """A passing forward record judged by ``dtype``'s entry, unless ``kw`` says otherwise."""
    key = kw.pop("key", dtype)
    fields = dict(
        spec=spec, spec_json={}, case="trailing", dtype=dtype, shape=[5, 64], backend="torch",
        runner=runner, check=check, against="reference", status="pass", max_abs=1e-7,
        max_rel=1e-7, ratio=0.1, tolerance={"key": key, **vars(TOLERANCES[key])},
    )  # fmt: skip
    fields.update(kw)
    return Record(**fields)


def _row(text: str, start: str) -> list[str]:
    return next(line for line in text.splitlines() if line.startswith(start)).split()


def test_the_spec_summary_names_each_preset_pass_or_fail_and_its_worst_ratio():
    records = [
        rec("gemma", "float32", ratio=0.25),
        rec("gemma", "float32", check="gradients", ratio=0.5),
        rec("gemma", "bfloat16", ratio=0.75),
        rec("llama", "float32", ratio=0.125),
        rec("llama", "bfloat16", status="fail", ratio=3.0, reason="x"),
        rec("llama", "bfloat16", ratio=0.5),
    ]
    text = spec_table(records)
    assert text.splitlines()[0].split() == ["spec", "float32", "bfloat16"]
    # the worst ratio of each cell, and how many of its checks failed
    assert _row(text, "gemma") == ["gemma", "PASS", "0.50", "PASS", "0.75"]
    assert _row(text, "llama") == ["llama", "PASS", "0.12", "FAIL", "1/2", "3.00"]


def test_a_failing_line_names_spec_case_shape_runner_and_the_element():
    expected = np.ones((2, 3))
    actual = expected.copy()
    actual[1, 2] = 1.5  # the one element outside the tolerance
    result = compare(actual.astype(np.float32), expected, "float32")
    assert not result.passed and "worst at [1, 2]: 1.5 where 1.0 is expected" in result.reason
    bad = rec("t5", "float32", status="fail", reason=result.reason, shape=[2, 3])
    (line,) = failure_lines([rec(), bad], verbose=False)
    assert line.startswith("FAIL t5 trailing float32[2, 3] torch-eager fwd: 1 of 6 elements")
    assert line.endswith("worst at [1, 2]: 1.5 where 1.0 is expected")


def test_verbose_lists_every_failing_check_and_the_default_says_how_many_more():
    failed = [rec(case=f"c{i}", status="fail", reason="r") for i in range(25)]
    assert len(failure_lines(failed, verbose=True)) == 25
    short = failure_lines(failed, verbose=False)
    assert len(short) == 21 and short[-1] == "... and 5 more (-v lists all)"


def test_the_bit_exact_column_judges_only_what_a_floor_judged():
    # a bfloat16 input whose preset promotes to float32 (flax): its share is not judged
    judged = rec("llama", "bfloat16", bit_share=0.995, bit_share_required=ROUNDING_AGREEMENT)
    promoted = rec("flax", "bfloat16", key="float32", bit_share=None, max_rel=2e-7, ratio=0.05)
    row = _row(table([judged, promoted]), "torch-eager")
    assert row[-2:] == ["99.50%", "(1)"]
    only_float32 = _row(table([rec(), rec(check="gradients")]), "torch-eager")
    assert only_float32[-1] == "n/a"


def test_the_rtol_column_names_the_entry_of_the_check_nearest_its_tolerance():
    # the float32-entry check has the smaller relative error but is nearer its limit
    near = rec("flax", "bfloat16", key="float32", max_rel=1e-6, ratio=0.9)
    far = rec("llama", "bfloat16", key="bfloat16", max_rel=1e-3, ratio=0.06)
    row = " ".join(_row(table([far, near]), "torch-eager"))
    rtol = TOLERANCES["float32"].rtol
    assert re.search(rf"PASS 1\.0e-06 {rtol:.1e} f32", row), row


def test_gradients_are_counted_but_do_not_set_the_worst_rel_column():
    row = _row(table([rec(max_rel=1e-8), rec(check="gradients", max_rel=0.5, ratio=0.9)]), "t")
    assert row[:8] == ["torch-eager", "float32", "1", "fwd", "+", "1", "grad", "PASS"]
    assert row[8] == "1.0e-08"


def _diff(regression=0, bits=0, only_now=0):
    counts = {"regression": regression, "bits changed": bits}
    return types.SimpleNamespace(
        count=lambda kind: counts.get(kind, 0),
        failed=lambda allow: regression > 0 or (bits > 0 and not allow),
        only_now=[f"check {i}" for i in range(only_now)],
    )


@pytest.mark.parametrize(
    "failed,diff,allow,code,says",
    [
        (0, None, False, 0, r"^exit 0: all 3 checks passed$"),
        (1, None, False, 1, r"^exit 1: 1 of 3 checks failed$"),
        (0, _diff(bits=4), False, 1, r"^exit 1: all 3 checks passed, but against the baseline: "
                                     r"4 check\(s\) whose output bits changed"),
        (0, _diff(bits=4), True, 0, r"^exit 0: all 3 checks passed and nothing regressed in "
                                    r"the 3 compared with the baseline$"),
        (0, _diff(regression=2), True, 1, r"against the baseline: 2 regression\(s\)$"),
        (0, _diff(only_now=1), False, 0, r"nothing regressed in the 2 compared with the "
                                         r"baseline; 1 only in this run$"),
        (0, _diff(only_now=3), False, 1, r"^exit 1: all 3 checks passed, but the baseline "
                                         r"has none of them: nothing was compared"),
    ],
    ids=["pass", "fail", "bits-changed", "bits-allowed", "regression", "some-unpaired",
         "none-paired"],
)  # fmt: skip
def test_the_verdict_says_why_the_exit_status_is_what_it_is(failed, diff, allow, code, says):
    records = [rec(status="fail" if i < failed else "pass") for i in range(3)]
    got, line = verdict(records, 0, diff, allow)
    assert got == code and re.search(says, line), line


def test_the_verdict_counts_skips_as_not_passed():
    _, line = verdict([rec()], 2, None, False)
    assert line == "exit 0: all 1 checks passed (2 skipped: not run, not passed)"
