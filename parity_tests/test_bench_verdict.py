"""``rmsnorm bench``'s verdict on a shared machine (issue 32 item 6): a ratio whose spread
reaches its target is "unsettled", not over it, and ``--check`` fails only on a settled
excess; a ``--gpu --smoke`` table says that it measures nothing."""

from __future__ import annotations

import json

import pytest

from rmsnorm_core.backends import Backend, register_backend, unregister_backend
from rmsnorm_core.bench import _bench
from rmsnorm_core.bench._bench import Benchmark, judge, run_one
from rmsnorm_core.bench._bench_gpu import SMOKE_NOTE, format_rows
from rmsnorm_core.bench._blocks import BlockTimes
from rmsnorm_core.cli._cli import main


@pytest.mark.parametrize(
    "ratio, spread, target, verdict",
    [
        (0.9, (0.8, 1.0), 1.0, "ok"),
        (1.0, (1.0, 1.0), 1.0, "ok"),  # at the target is within it
        (1.01, (0.97, 1.05), 1.0, "unsettled"),  # a tie on a noisy machine
        (1.01, (1.0, 1.02), 1.0, "unsettled"),  # the lower quartile reaches it
        (1.2, (1.1, 1.3), 1.0, "over target"),  # settled
        (5.0, (4.0, 6.0), None, "ok"),  # no target: nothing to judge
    ],
)
def test_judge(ratio, spread, target, verdict):
    assert judge(ratio, spread, target) == verdict


def _timed(cands, bases):
    return lambda *a, **k: BlockTimes(list(cands), list(bases), 1)


def test_run_one_judges_the_spread_of_its_pairs(monkeypatch):
    bench = Benchmark("b[float32]", "peer", lambda: (None, None), target=1.0)
    # pair ratios 0.95, 1.0, 1.02, 1.05, 1.1: median time ratio 1.02, lower quartile 1.0
    monkeypatch.setattr(_bench, "time_pairs", _timed([0.95, 1.0, 1.02, 1.05, 1.1], [1.0] * 5))
    r = run_one(bench)
    assert r.ratio == pytest.approx(1.02) and r.spread[0] == pytest.approx(1.0)
    assert r.status == "unsettled"
    monkeypatch.setattr(_bench, "time_pairs", _timed([1.2, 1.3, 1.25, 1.22, 1.28], [1.0] * 5))
    assert run_one(bench).status == "over target"


@pytest.fixture
def tie():
    """A benchmark whose ratio straddles its target: ours alternates faster and slower."""
    state = {"n": 0}

    def ours():
        state["n"] += 1
        return sum(range(4000 if state["n"] % 2 else 10))

    register_backend(Backend("tie", benchmarks=lambda: [
        Benchmark("tie.case[float32]", "peer", lambda: (ours, lambda: sum(range(2000))),
                  target=1.0)]))  # fmt: skip
    yield
    unregister_backend("tie")


def test_check_fails_only_on_a_settled_excess(tie, tmp_path, capsys, monkeypatch):
    argv = ["bench", "-k", "tie*", "--sweep", "none", "--json", str(tmp_path / "b.json")]
    # the timings the case's own pairs would give on a noisy machine: a tie
    monkeypatch.setattr(_bench, "time_pairs", _timed([0.9, 1.0, 1.1, 1.2, 1.05], [1.0] * 5))
    assert main([*argv, "--check"]) == 0
    assert "unsettled" in capsys.readouterr().out
    monkeypatch.setattr(_bench, "time_pairs", _timed([1.3, 1.4, 1.5, 1.6, 1.45], [1.0] * 5))
    assert main([*argv, "--check"]) == 1
    assert "--check: 1 over target: tie.case[float32]" in capsys.readouterr().err


def test_a_smoke_table_says_it_measures_nothing():
    row = {"group": "g", "contender": "c", "ms": 1.0, "gbps": 2.0, "peak_fraction": None,
           "ratio_vs_peer": 300.0}  # fmt: skip
    assert SMOKE_NOTE in format_rows([row], smoke=True)
    assert SMOKE_NOTE not in format_rows([row])
    assert "measure no speed" in SMOKE_NOTE


def test_check_fails_on_a_case_that_crashed_and_the_json_holds_null(tmp_path, capsys, monkeypatch):
    def crash(*a, **k):
        raise RuntimeError("simulated crash")

    register_backend(Backend("crashy", benchmarks=lambda: [
        Benchmark("crashy.case[float32]", "peer", lambda: (None, None), target=1.0)]))  # fmt: skip
    try:
        monkeypatch.setattr(_bench, "time_pairs", crash)
        report = tmp_path / "b.json"
        argv = ["bench", "-k", "crashy*", "--sweep", "none", "--json", str(report)]
        assert main(argv) == 0  # reported in the table without --check
        assert main([*argv, "--check"]) == 1
        assert "--check: 1 failed: crashy.case[float32]" in capsys.readouterr().err
        text = report.read_text()
        assert "NaN" not in text and json.loads(text)["results"][0]["ratio"] is None
    finally:
        unregister_backend("crashy")


def test_the_ratio_lies_within_its_spread(monkeypatch):
    bench = Benchmark("b[float32]", "peer", lambda: (None, None), target=1.0)
    # medians 5 / 1 = 5, but the pairs' ratios are 1, 5, 1 (quartiles 1 and 3): a ratio of
    # the medians lay outside its own spread; the median of the pairs cannot
    monkeypatch.setattr(_bench, "time_pairs", _timed([1.0, 5.0, 6.0], [1.0, 1.0, 6.0]))
    r = run_one(bench)
    assert r.ratio == 1.0 and r.spread[0] <= r.ratio <= r.spread[1]
