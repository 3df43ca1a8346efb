"""``rmsnorm verify``'s output, run end to end on in-process backends (issue 32 items 1,
2, 3 and 5): ``-v`` lines, columns judged by their own rule, a progress counter that
counts what the summary counts, the last line, and skip rows with an install command."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from _verify_backends import reference_runner

from rmsnorm_core.backends import Backend, NotApplicable, Runner
from rmsnorm_core.cli._cli import main
from rmsnorm_core.parity._case_table import cases
from rmsnorm_core.spec._spec import RMSNormSpec
from rmsnorm_core.testing import Outcome, expected_forward
from rmsnorm_core.verify._summary import counts_line
from rmsnorm_core.verify._verify import problems_for, run_matrix


def test_verbose_prints_every_failing_check_with_its_element(registered, capsys):
    registered(Backend("broken", runners=(reference_runner("broken-scaled", 1.1),)))
    assert main(["verify", "--quick", "--backend", "broken", "-v"]) == 1
    out = capsys.readouterr().out.splitlines()
    lines = [ln for ln in out if ln.startswith("FAIL ") and " broken-scaled fwd: " in ln]
    # every preset x quick dtype x quick case fails (the output is 10% off)
    expected = len(RMSNormSpec.presets()) * 2 * len(cases("quick"))
    assert len(lines) == expected > 20
    for line in lines:
        assert re.match(r"FAIL \w+ [\w-]+ (float32|bfloat16)\[[\d, ]+\] broken-scaled fwd: ", line)
        assert re.search(r"worst at \[[\d, ]+\]: \S+ where \S+ is expected$", line), line
    assert out[-1] == f"exit 1: {expected} of {expected} checks failed"


def _float32_one_ulp_up(p):
    """The reference, with every float32 output element one ulp up (within tolerance:
    a float32 output is judged by tolerance, never bit for bit)."""
    y, s = expected_forward(p)
    if y.dtype == np.float32:
        y = np.nextafter(y, np.float32(np.inf))
    return Outcome(y, s)


def test_a_passing_row_never_shows_a_bit_share_no_floor_judged(registered, capsys, tmp_path):
    registered(Backend("ulp", runners=(Runner("ulp-f32", _float32_one_ulp_up),)))
    report = tmp_path / "r.json"
    argv = ["verify", "--quick", "--preset", "flax", "--preset", "gemma", "--backend", "ulp"]
    assert main([*argv, "--report", str(report)]) == 0
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith("ulp-f32")]
    bf16 = next(r for r in rows if r[1] == "bfloat16")
    # flax promotes a bfloat16 input to a float32 output (no floor); gemma keeps bfloat16
    assert bf16[-2] == "100.00%", bf16
    f32 = next(r for r in rows if r[1] == "float32")
    assert f32[-1] == "n/a" and f32[-3:-1] == ["1.3e-06", "f32"], f32
    records = json.loads(report.read_text())["records"]
    promoted = [r for r in records if r["spec"] == "flax" and r["dtype"] == "bfloat16"]
    assert promoted and all(r["bit_share"] is None for r in promoted)
    assert all(r["tolerance"]["key"] == "float32" for r in promoted)


def _declines_bfloat16(p):
    if p.x.dtype != np.float32:
        raise NotApplicable
    return Outcome(*expected_forward(p))


def _batch(problems):
    return [Outcome(*expected_forward(p)) for p in problems]


def test_the_progress_counter_ends_at_the_calls_the_summary_counts():
    runners = {
        "a": [reference_runner("a-one"), Runner("a-some", _declines_bfloat16)],
        "b": [Runner("b-batch", lambda p: _batch([p])[0], batch=_batch)],
    }
    items = problems_for({"llama": RMSNormSpec.preset("llama")}, quick=True)
    seen = []
    matrix = run_matrix(items, runners, True, lambda d, t, w: seen.append((d, t)), jobs=2)
    totals = {t for _, t in seen}
    assert totals == {3 * len(items)} and seen[-1][0] == 3 * len(items)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # never goes back
    assert matrix.calls == 3 * len(items) and matrix.not_applicable == len(items) // 2
    # one forward check per call that was not declined, one cross check per problem, and
    # one self check (against a-one's bits) per call of a-some that was not declined
    checks = 2 * len(items) + len(items) // 2 + len(items) + len(items) // 2
    assert len(matrix.records) == checks
    line = counts_line(matrix.records, matrix.calls, matrix.not_applicable, 0)
    assert line == (f"{3 * len(items)} runner calls ({len(items) // 2} not applicable) gave "
                    f"{checks} checks: {checks} passed, 0 failed; nothing skipped")  # fmt: skip


def test_hugging_face_runners_without_transformers_are_skipped_rows_with_install():
    pytest.importorskip("torch")
    code = (
        "import sys\nsys.modules['transformers'] = None\n"
        "from rmsnorm_core.cli._cli import main\n"
        "sys.exit(main(['verify', '--quick', '--preset', 'llama', '--preset', 't5', '--backend',"
        " 'torch-eager', '--backend', 'upstream-hf-llama', '--backend', 'upstream-hf-t5']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    for runner in ("upstream-hf-llama", "upstream-hf-t5"):
        row = rf"^{runner}\s+needs transformers\s+pip install -e '\.\[hf\]'$"
        assert any(re.match(row, ln) for ln in lines), out.stdout[-3000:]
    table = [ln for ln in lines if ln.startswith("torch-eager")]
    assert table and all(len(ln) <= 100 for ln in table)
    assert "0 failed; 2 skipped (runners or backends)" in out.stdout
    assert lines[-1].endswith("(2 skipped: not run, not passed)")
