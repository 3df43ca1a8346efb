"""``rmsnorm bench --gpu``: the harness runs end to end (``--smoke``), says what it
skipped, and reports bandwidth, fraction of peak and ratios it computed itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rmsnorm_core.bench import _bench_gpu as g

ROOT = Path(__file__).resolve().parent.parent


def _case(group, name, seconds, peer=False, setup=None):
    def default():
        return g.Timed(lambda: None, lambda: None, "NVIDIA H100 80GB HBM3")

    return g.GpuCase(group, name, 2_000_000, setup or default, peer)


def test_bandwidth_fraction_and_ratio_come_from_the_times(monkeypatch):
    times = iter([2.0, 1.0])  # medians in ms: ours then the peer
    monkeypatch.setattr(g, "_median_ms", lambda *a: next(times))
    rows = g.run_cases(
        [_case("grp", "ours", 2.0), _case("grp", "peer", 1.0, peer=True)],
        warmup=0, repeat=1, inner=1, peak=None,
    )  # fmt: skip
    ours, peer = rows
    assert ours["gbps"] == pytest.approx(2_000_000 / 2.0 / 1e6)
    assert ours["peak_fraction"] == pytest.approx(ours["gbps"] / 3350.0)  # H100 (SXM) nominal
    assert ours["ratio_vs_peer"] == pytest.approx(2.0) and peer["ratio_vs_peer"] == 1.0
    assert g.default_path(rows, "out") == Path("out/gpu-nvidia-h100-80gb-hbm3.json")


def test_unavailable_cases_are_skipped_and_crashes_reported():
    def absent():
        raise g.Unavailable("no CUDA device")

    def broken():
        raise RuntimeError("boom")

    rows = g.run_cases([_case("a", "x", 1, setup=absent), _case("a", "y", 1, setup=broken)],
                       warmup=0, repeat=1, inner=1, peak=None)  # fmt: skip
    assert [r["status"] for r in rows] == ["skipped: no CUDA device", "failed: RuntimeError: boom"]


@pytest.mark.skipif(
    pytest.importorskip("torch").cuda.is_available(), reason="the interpreter smoke run"
)
def test_smoke_run_end_to_end_under_the_interpreter(tmp_path):
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (path,) = tmp_path.glob("gpu-*.json")
    doc = json.loads(path.read_text())
    assert doc["smoke"] is True
    rows = {(r["group"], r["contender"]): r for r in doc["rows"]}
    for dtype in g.DTYPES:
        for direction in ("fwd", "fwd+bwd"):
            for framework, ours in (("torch", "ours (eager)"), ("flax", "ours (linen, jit)")):
                row = rows[(f"{framework} {direction} [4x256 {dtype}]", ours)]
                assert row["status"] == "ok" and row["ms"] > 0 and row["ratio_vs_peer"] > 0
    assert all(r["status"] == "ok" or r["status"].startswith("skipped") for r in doc["rows"])
