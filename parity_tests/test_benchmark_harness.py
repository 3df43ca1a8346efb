"""The benchmark harness reports ratios and writes JSON; it never asserts speed."""

from __future__ import annotations

import json

from benchmarks import _harness


def test_run_reports_a_ratio_and_writes_json(tmp_path):
    bench = _harness.Benchmark(
        "demo", "peer", lambda: (lambda: sum(range(10)), lambda: 0), target=1e9
    )
    result = _harness.run_one(bench, warmup=1, repeat=3)
    assert result.ratio == result.candidate_ms / result.baseline_ms
    assert result.status == "ok"
    table = _harness.format_table([result])
    assert "demo" in table and "peer" in table
    _harness.write_json([result], tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["results"][0]["name"] == "demo" and "machine" in doc


def test_missing_framework_is_reported_skipped():
    bench = _harness.Benchmark(
        "x", "y", lambda: (lambda: 0, lambda: 0), requires=("no_such_framework_xyz",)
    )
    assert _harness.run_one(bench).status == "skipped: no_such_framework_xyz is not installed"


def test_every_benchmark_module_registers():
    _harness.discover()
    assert "core.reference.forward[f32 1024x1024]" in _harness.REGISTRY
