"""``rmsnorm verify`` accounts for every check it planned: a runner that raises in the
middle of a run fails each check it owed (forward, gradients, and the comparisons with
its output), with the error named, and the summary's counts add up to the plan."""

from __future__ import annotations

import json

import pytest
from _verify_backends import reference_runner, with_gradients

from rmsnorm_core.backends import Backend, Runner
from rmsnorm_core.cli._cli import main
from rmsnorm_core.parity._case_table import QUICK_DTYPES, cases
from rmsnorm_core.spec._spec import RMSNormSpec
from rmsnorm_core.verify._verify import problems_for, run_matrix

BOOM = "kernel exploded"


def _explodes_on_bfloat16(p):
    """Fine on float32, raises on bfloat16: a crash in the middle of the run."""
    if p.x.dtype.name == "bfloat16":
        raise RuntimeError(BOOM)
    return with_gradients(p)


def _planned(case_ids, dtypes):
    """Every check of the run below, written out: per problem, each runner's forward and
    gradients, boom-jit's self check against boom-eager (its backend's first runner)
    and calm-eager's cross check against boom-eager (the first backend's first)."""
    per_problem = [
        ("boom-eager", "forward", "reference"),
        ("boom-eager", "gradients", "reference"),
        ("boom-jit", "forward", "reference"),
        ("boom-jit", "gradients", "reference"),
        ("boom-jit", "self", "boom-eager"),
        ("calm-eager", "forward", "reference"),
        ("calm-eager", "gradients", "reference"),
        ("calm-eager", "cross", "boom-eager"),
    ]
    return {(c, d, *check) for c in case_ids for d in dtypes for check in per_problem}


def test_a_crashed_runner_fails_every_check_it_owed(registered, capsys, tmp_path):
    registered(Backend("boom", runners=(
        Runner("boom-eager", _explodes_on_bfloat16, gradients=True),
        Runner("boom-jit", with_gradients, gradients=True),
    )))  # fmt: skip
    registered(Backend("calm", runners=(Runner("calm-eager", with_gradients, gradients=True),)))
    report = tmp_path / "r.json"
    argv = ["verify", "--quick", "--preset", "llama", "--backend", "boom", "--backend", "calm"]
    assert main([*argv, "--report", str(report)]) == 1
    doc = json.loads(report.read_text())
    records = doc["records"]
    ids = [c.id for c in cases("quick")]
    got = [(r["case"], r["dtype"], r["runner"], r["check"], r["against"]) for r in records]
    assert len(got) == len(set(got)) and set(got) == _planned(ids, QUICK_DTYPES)
    failed = [r for r in records if r["status"] == "fail"]
    # on bfloat16: boom-eager's forward and gradients, and the two checks against it
    assert {(r["dtype"], r["runner"], r["check"]) for r in failed} == {
        ("bfloat16", runner, check)
        for runner, check in [("boom-eager", "forward"), ("boom-eager", "gradients"),
                              ("boom-jit", "self"), ("calm-eager", "cross")]
    }  # fmt: skip
    assert len(failed) == 4 * len(ids)
    for r in failed:
        assert f"RuntimeError: {BOOM}" in r["reason"] and r["max_rel"] is None
        if r["runner"] != "boom-eager":
            assert r["reason"].startswith("not compared: boom-eager raised")
    assert doc["counts"] == {"pass": len(records) - len(failed), "fail": len(failed), "varies": 0}
    out = capsys.readouterr().out
    calls = 3 * len(ids) * len(QUICK_DTYPES)
    assert (f"{calls} runner calls gave {len(records)} checks: {len(records) - len(failed)} "
            f"passed, {len(failed)} failed") in out  # fmt: skip
    assert out.splitlines()[-1] == f"exit 1: {len(failed)} of {len(records)} checks failed"


def _launch_fails(problems):
    raise OSError("the child process died")


def _declares_no_gradients(p):
    return with_gradients(p)


def _items():
    return problems_for({"llama": RMSNormSpec.preset("llama")}, quick=True)


def test_a_failed_batch_launch_fails_each_planned_check():
    runner = Runner("pool-2procs", lambda p: _launch_fails([p])[0], batch=_launch_fails,
                    gradients=True)  # fmt: skip
    items = _items()
    matrix = run_matrix(items, {"pool": [runner]}, True, lambda *a: None, jobs=1)
    assert [(r.case, r.dtype, r.check) for r in matrix.records] == [
        (case.id, p.x.dtype.name, check)
        for _, case, p in items
        for check in ("forward", "gradients")
    ]
    assert all(r.status == "fail" and "OSError: the child process died" in r.reason
               for r in matrix.records)  # fmt: skip


@pytest.mark.parametrize("declared", [True, False], ids=["declared-none-returned", "undeclared"])
def test_gradients_that_differ_from_the_declaration_fail(declared):
    run = reference_runner("x").run if declared else _declares_no_gradients
    runner = Runner("odd-eager", run, gradients=declared)
    items = _items()
    matrix = run_matrix(items, {"odd": [runner]}, True, lambda *a: None, jobs=1)
    checks = ("forward", "gradients") if declared else ("forward",)
    assert [(r.case, r.check) for r in matrix.records] == [
        (case.id, check) for _, case, _ in items for check in checks
    ]
    failed = [r for r in matrix.records if r.status == "fail"]
    if declared:  # the forward passes; the gradient check it owed fails, never vanishes
        assert [r.check for r in failed] == ["gradients"] * len(items)
        assert all("returned no gradients" in r.reason for r in failed)
    else:  # gradients nobody would judge: the call fails
        assert len(failed) == len(items)
        assert all("returned gradients but declares none" in r.reason for r in failed)
