"""``rmsnorm bench`` leaves nothing behind and fails early (issue 30 item 11): an ONNX
case's exported models live in a temporary folder only until their sessions are
loaded, and are removed on an error too; ``--plots`` without matplotlib is refused
before any case runs, with the install command."""

from __future__ import annotations

import sys
import tempfile

import pytest

from rmsnorm_core.backends import Backend, register_backend, unregister_backend
from rmsnorm_core.bench._bench import Benchmark
from rmsnorm_core.cli._cli import main


@pytest.fixture
def ran():
    calls = []

    def setup():
        calls.append("setup")
        return (lambda: None), (lambda: None)

    register_backend(
        Backend("cleanup", benchmarks=lambda: [Benchmark("cleanup.case[float32]", "x", setup)])
    )
    yield calls
    unregister_backend("cleanup")


def test_plots_without_matplotlib_is_refused_before_any_case_runs(ran, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    plots = tmp_path / "plots"
    argv = ["bench", "-k", "cleanup*", "--repeat", "1", "--warmup", "0", "--sweep", "none"]
    code = main([*argv, "--json", str(tmp_path / "b.json"), "--plots", str(plots)])
    assert code == 2
    assert ran == [], "the cases ran before --plots was refused"
    assert not plots.exists() and not (tmp_path / "b.json").exists()


def test_plots_refusal_names_the_install_command(ran, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert main(["bench", "-k", "cleanup*", "--plots", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "--plots needs matplotlib: pip install -e '.[bench]'" in err, err
    assert err.count("\n") == 1


def _onnx_case():
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from rmsnorm_torch.plugins._benchmarks_onnx import onnx_benchmarks

    return next(
        b for b in onnx_benchmarks() if b.name == "onnxruntime.torchscript17.torch[float32]"
    )


def test_an_onnx_case_leaves_no_folder_and_its_sessions_still_run(tmp_path, monkeypatch):
    case = _onnx_case()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ours, peer = case.setup()
    assert list(tmp_path.iterdir()) == [], "the exported models were left behind"
    assert ours()[0].shape == peer()[0].shape == (4096, 4096)


def test_an_onnx_case_that_fails_leaves_no_folder(tmp_path, monkeypatch):
    case = _onnx_case()
    from rmsnorm_torch.export import _onnx

    def broken(module, path, *args, **kwargs):
        path.write_bytes(b"half an export")
        raise RuntimeError("injected")

    monkeypatch.setattr(_onnx, "export_onnx", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(RuntimeError, match="injected"):
        case.setup()
    assert list(tmp_path.iterdir()) == []
