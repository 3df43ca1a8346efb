"""The benchmark harness reports ratios, writes JSON and plots; it never asserts speed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rmsnorm_core.bench import _bench
from rmsnorm_core.cli._cli import main
from rmsnorm_core.cli._cli_bench import collect


def test_run_reports_a_ratio_and_writes_json(tmp_path):
    bench = _bench.Benchmark(
        "demo", "peer", lambda: (lambda: sum(range(10)), lambda: 0), target=1e9
    )
    result = _bench.run_one(bench, warmup=1, repeat=3)
    # the median of the per-pair ratios: within its own spread (their quartiles)
    assert result.spread[0] <= result.ratio <= result.spread[1]
    assert result.status == "ok"
    table = _bench.format_table([result])
    assert "demo" in table and "peer" in table
    _bench.write_json([result], tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["results"][0]["name"] == "demo" and "machine" in doc


def test_missing_framework_is_reported_skipped_and_a_crash_failed():
    absent = _bench.Benchmark(
        "x", "y", lambda: (lambda: 0, lambda: 0), requires=("no_such_framework_xyz",)
    )
    # the skip names the command that installs what is missing (no extra holds this one)
    assert _bench.run_one(absent).status == (
        "skipped: no_such_framework_xyz is not installed (pip install no_such_framework_xyz)"
    )

    def broken():
        raise RuntimeError("boom")

    assert _bench.run_one(_bench.Benchmark("b", "y", broken)).status == "failed: RuntimeError: boom"


def test_every_backend_contributes_cases_for_each_row_of_the_issue_table():
    names = {b.name for b in collect()[0]}
    for expected in (
        "torch.eager.forward[bfloat16]",
        "torch.eager.forward-vs-clone[float16]",
        "torch.eager.residual[float32]",
        "torch.compile.forward[bfloat16]",
        "torch.script.forward[float32]",
        "flax.linen.forward[float16]",
        "flax.linen.forward+backward[float32]",
        "flax.linen.forward+backward-analytic[float32]",
        "flax.residual.forward+backward[bfloat16]",
        "onnxruntime.dynamo18.llama[bfloat16]",
        "onnxruntime.torchscript17.paper[float32]",
        "onnxruntime.dynamo23.gemma[float32]",
    ):
        assert expected in names


def test_bench_command_writes_table_json_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    report = tmp_path / "b.json"
    assert (
        main(
            [
                "bench",
                "-k",
                "core.*",
                "--repeat",
                "2",
                "--warmup",
                "1",
                "--json",
                str(report),
                "--plots",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    assert "core.reference.forward" in out.out and "[1/1]" in out.err
    assert json.loads(report.read_text())["results"][0]["ratio"] > 0
    png = (tmp_path / "ratios.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_and_its_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from rmsnorm_core.bench._bench_plots import plot_sweeps

    sweep = _bench.Sweep("demo", "peer", lambda rows, cols, dtype: (lambda: rows * cols, lambda: 0))
    result = _bench.run_sweep(sweep, "float32", warmup=0, repeat=1)
    assert result["columns"] == list(_bench.SWEEP_COLUMNS) and len(result["ours_ms"]) == 6
    assert plot_sweeps([result], tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_python_m_benchmarks_is_rmsnorm_bench():
    r = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--list", "-k", "core.*"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "core.reference.forward" in r.stdout, r.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-5", "fast"])
def test_peak_gbps_must_be_a_number_above_zero(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--gpu", "--smoke", "--peak-gbps", value])
    assert exit_info.value.code == 2
    assert "expected a number > 0" in capsys.readouterr().err


def test_the_report_path_is_checked_before_any_benchmark_runs(tmp_path, capsys):
    argv = ["bench", "-k", "core.*", "--repeat", "1", "--warmup", "0", "--json"]
    assert main([*argv, str(tmp_path / "missing" / "b.json")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "[1/1]" not in err  # refused before running
    notes = tmp_path / "notes.json"
    notes.write_text("my notes")
    assert main([*argv, str(notes)]) == 2
    assert "is not an earlier bench report" in capsys.readouterr().err
    assert notes.read_text() == "my notes"
    report = tmp_path / "b.json"
    assert main([*argv, str(report)]) == 0
    assert main([*argv, str(report)]) == 0  # an earlier report is replaced
