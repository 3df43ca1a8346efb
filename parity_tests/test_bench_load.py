"""``rmsnorm bench --load N``: N busy processes run beside the cases and are gone after,
however the run ends; the table and the JSON say the load they ran under."""

from __future__ import annotations

import json
import os

import pytest

from rmsnorm_core.backends import Backend, register_backend, unregister_backend
from rmsnorm_core.bench._bench import Benchmark
from rmsnorm_core.bench._load import competing_processes
from rmsnorm_core.cli._cli import main

FAST = ["--repeat", "3", "--warmup", "0", "--sweep", "none"]
SEEN: list[int] = []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@pytest.fixture
def demo():
    def pair():
        return (lambda: sum(range(100))), (lambda: sum(range(100)))

    register_backend(Backend("demo", benchmarks=lambda: [Benchmark("demo.x[float32]", "p", pair)]))
    yield
    unregister_backend("demo")


def test_the_competitors_run_inside_the_block_and_are_gone_after():
    with competing_processes(2) as pids:
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    assert not any(_alive(p) for p in pids)


def test_the_competitors_are_gone_when_the_block_raises():
    with pytest.raises(KeyboardInterrupt), competing_processes(1) as pids:
        SEEN.extend(pids)
        raise KeyboardInterrupt
    assert SEEN and not any(_alive(p) for p in SEEN)


def test_bench_reports_the_load_in_the_table_and_the_json(demo, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "-k", "demo*", *FAST, "--load", "1", "--json", str(out)]) == 0
    assert "load: 1 busy process(es) ran beside every case" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["machine"]["load"] == 1
    low, high = doc["results"][0]["spread"]
    assert low <= high


@pytest.mark.parametrize("value", ["-1", "65"])
def test_a_load_out_of_range_is_refused(value, tmp_path, capsys):
    assert main(["bench", "--load", value, "--json", str(tmp_path / "b.json")]) == 2
    assert f"--load {value}: must be between 0 and 64" in capsys.readouterr().err
