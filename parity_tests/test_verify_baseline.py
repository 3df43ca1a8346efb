"""``rmsnorm verify --baseline OLD.json`` (issue 23 item 4): this run against an earlier
report, check by check, with a runner whose output is changed between the two runs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rmsnorm_core.backends import Backend, Runner, register_backend, unregister_backend
from rmsnorm_core.cli._cli import main
from rmsnorm_core.testing import Outcome, expected_forward

#: how the runner below changes the reference: "exact", "ulp" (one element one ulp up:
#: within tolerance, other bits) or "wrong" (10% off: fails)
MODE = {"now": "exact"}


def _run(p):
    y, s = expected_forward(p)
    y = y.copy()
    if MODE["now"] == "ulp" and y.size:
        y.flat[0] = np.nextafter(y.flat[0], np.inf, dtype=y.dtype)
    if MODE["now"] == "wrong":
        y = (y * np.asarray(1.1, y.dtype)).astype(y.dtype)
    return Outcome(y, s)


@pytest.fixture
def oracle():
    register_backend(Backend("oracle", runners=(Runner("oracle-eager", _run),)))
    MODE["now"] = "exact"
    yield MODE
    unregister_backend("oracle")


def _verify(tmp_path, *extra):
    argv = ["verify", "--quick", "--preset", "llama", "--backend", "oracle", *extra]
    return main([*argv, "--report", str(tmp_path / "new.json")])


def _baseline(tmp_path, mode):
    MODE["now"] = mode
    assert _verify(tmp_path) == (1 if mode == "wrong" else 0)
    os.replace(tmp_path / "new.json", tmp_path / "old.json")


def test_the_same_code_twice_changes_nothing(oracle, tmp_path, capsys):
    _baseline(tmp_path, "exact")
    assert _verify(tmp_path, "--baseline", str(tmp_path / "old.json")) == 0
    out = capsys.readouterr().out
    for kind in ("regression", "fixed", "error changed", "bits changed"):
        assert f"  {kind:14s} 0" in out


def test_changed_bits_fail_unless_allowed(oracle, tmp_path, capsys):
    _baseline(tmp_path, "exact")
    MODE["now"] = "ulp"  # every check still passes: only the bits moved
    diff = tmp_path / "diff.json"
    assert _verify(tmp_path, "--baseline", str(tmp_path / "old.json"), "--diff", str(diff)) == 1
    out = capsys.readouterr().out
    assert "0 failed" in out and "BITS CHANGED oracle-eager forward" in out
    doc = json.loads(diff.read_text())
    assert doc["counts"]["bits changed"] > 0 and doc["counts"]["regression"] == 0
    change = doc["changes"][0]
    assert change["before"]["digest"] != change["after"]["digest"]
    argv = ["--baseline", str(tmp_path / "old.json"), "--allow-bit-changes"]
    assert _verify(tmp_path, *argv) == 0
    assert "(allowed)" in capsys.readouterr().out


def test_a_regression_and_a_fix_are_named(oracle, tmp_path, capsys):
    _baseline(tmp_path, "exact")
    MODE["now"] = "wrong"
    assert _verify(tmp_path, "--baseline", str(tmp_path / "old.json")) == 1
    out = capsys.readouterr().out
    assert "REGRESSION oracle-eager forward" in out and "pass -> fail" in out
    _baseline(tmp_path, "wrong")
    MODE["now"] = "exact"
    assert _verify(tmp_path, "--baseline", str(tmp_path / "old.json")) == 0
    out = capsys.readouterr().out
    assert "FIXED oracle-eager forward" in out and "regression     0" in out


def test_a_report_without_digests_says_bit_changes_are_unseen(oracle, tmp_path, capsys):
    _baseline(tmp_path, "exact")
    old = json.loads((tmp_path / "old.json").read_text())
    old.pop("report_version")
    for record in old["records"]:
        record.pop("digest")
    (tmp_path / "old.json").write_text(json.dumps(old))
    MODE["now"] = "ulp"
    assert _verify(tmp_path, "--baseline", str(tmp_path / "old.json")) == 0
    assert "bit changes cannot be seen" in capsys.readouterr().out


def test_narrowing_the_run_leaves_checks_unjudged(oracle, tmp_path, capsys):
    _baseline(tmp_path, "exact")
    argv = ["verify", "--quick", "--preset", "llama", "--backend", "oracle", "--preset", "gemma"]
    assert main([*argv, "--baseline", str(tmp_path / "old.json")]) == 0
    # gemma's checks: 2 quick dtypes x 2 quick cases, forward only (the oracle has no grads)
    assert "only now       4  (not judged)" in capsys.readouterr().out


NAMES = ("backend", "check", "dtype", "spec", "case", "shape")  # what names a check


@pytest.mark.parametrize(
    "content,code,match",
    [
        ("{oops", 2, "--baseline '.*old.json' is not valid JSON"),
        ('{"records": 3}', 2, "is not an rmsnorm verify report"),
        (None, 2, "is not a regular file"),
        ('{"records": [3]}', 2, "record 0 is not a JSON object"),
        ('{"records": [{"backend": "torch", "check": "forward"}]}', 2, "record 0 lacks 'dtype'"),
        (
            json.dumps({"records": [dict.fromkeys(NAMES, "x") | {"shape": [], "status": None}]}),
            2,
            "record 0 has status=null; accepted: 'pass', 'fail', 'varies' or 'skipped'",
        ),
    ],
    ids=["not-json", "not-a-report", "fifo", "record-not-object", "record-unnamed", "status"],
)
def test_a_bad_baseline_is_refused_before_the_run(tmp_path, capsys, content, code, match):
    import re

    old = tmp_path / "old.json"
    if content is None:
        os.mkfifo(old)
    else:
        old.write_text(content)
    assert main(["verify", "--quick", "--baseline", str(old)]) == code
    err = capsys.readouterr()
    assert re.search(match, err.err) and "passed" not in err.out


def test_diff_needs_a_baseline_and_its_own_path(tmp_path, capsys):
    assert main(["verify", "--quick", "--diff", str(tmp_path / "d.json")]) == 2
    assert "go with --baseline" in capsys.readouterr().err
    same = str(tmp_path / "r.json")
    assert main(["verify", "--baseline", same, "--diff", same]) == 2
    assert f"--diff {same!r} is the same file as --baseline" in capsys.readouterr().err
    report = str(tmp_path / "n.json")
    assert main(["verify", "--baseline", same, "--report", report, "--diff", report]) == 2
    assert f"--diff {report!r} is the same file as --report" in capsys.readouterr().err
