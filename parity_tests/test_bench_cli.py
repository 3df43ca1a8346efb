"""``rmsnorm bench`` as a person reads it (issue 23 item 5): ``--plots DIR`` is created,
``-k`` selects sweeps too and a plot not written is named with why, plots never replace
a file this command did not write, ``--check`` exits 1 over target, the table explains."""

from __future__ import annotations

import pytest

from rmsnorm_core.backends import Backend, register_backend, unregister_backend
from rmsnorm_core.bench._bench import LEGEND, Benchmark, Sweep
from rmsnorm_core.cli._cli import main

pytest.importorskip("matplotlib")
FAST = ["--repeat", "1", "--warmup", "0", "--sweep", "float32"]


def _pair():
    return (lambda: sum(range(2000))), (lambda: sum(range(10)))  # ours is slower


@pytest.fixture
def demo():
    register_backend(
        Backend(
            "demo",
            benchmarks=lambda: [
                Benchmark("demo.slow[float32]", "a faster peer", _pair, target=0.5),
                Benchmark("demo.other[bfloat16]", "a faster peer", _pair),
            ],
            sweeps=lambda: [Sweep("demo.sweep", "peer", lambda rows, cols, dtype: _pair())],
        )
    )
    yield
    unregister_backend("demo")


def _png_tagged(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and b"rmsnorm-bridge bench" in data[:4096]


def test_plots_folder_is_created_and_both_plots_written(demo, tmp_path, capsys):
    plots = tmp_path / "new" / "plots"
    argv = ["bench", "-k", "demo*", *FAST, "--json", str(tmp_path / "b.json")]
    assert main([*argv, "--plots", str(plots)]) == 0  # over target, without --check: 0
    out = capsys.readouterr().out
    assert _png_tagged(plots / "ratios.png") and _png_tagged(plots / "sweep.png")
    assert "over target" in out and LEGEND in out
    assert main([*argv, "--plots", str(plots), "--check"]) == 1  # our own plots replaced
    assert "--check: 1 over target: demo.slow[float32]" in capsys.readouterr().err


def test_a_plot_not_written_is_named_with_why(demo, tmp_path, capsys):
    argv = ["bench", "-k", "demo.slow*", *FAST, "--json", str(tmp_path / "b.json")]
    assert main([*argv, "--plots", str(tmp_path)]) == 0
    assert "sweep.png not written: -k 'demo.slow*' matches no sweep" in capsys.readouterr().out
    assert not (tmp_path / "sweep.png").exists()
    assert main([*argv[:3], "--repeat", "1", "--warmup", "0", "--sweep", "none",
                 "--json", str(tmp_path / "b.json"), "--plots", str(tmp_path)]) == 0  # fmt: skip
    assert "sweep.png not written: --sweep none" in capsys.readouterr().out


def test_plots_never_replace_a_file_this_command_did_not_write(demo, tmp_path, capsys):
    mine = tmp_path / "ratios.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\nmy own figure")
    argv = ["bench", "-k", "demo*", *FAST, "--json", str(tmp_path / "b.json")]
    assert main([*argv, "--plots", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "ratios.png exists and was not written by rmsnorm bench" in err and "[1/" not in err
    assert mine.read_bytes() == b"\x89PNG\r\n\x1a\nmy own figure"
    (tmp_path / "afile").write_text("x")
    assert main([*argv, "--plots", str(tmp_path / "afile")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
