"""A partial install: a backend whose framework is missing is skipped, saying so.

Both entry points import no framework (their capabilities load lazily), so the
registry tells a missing framework from ``Backend.requires`` without importing
it. The framework is hidden in a fresh interpreter (``sys.modules[name] =
None`` makes it unimportable and unfindable, as an uninstalled package is).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def _run(hidden: tuple[str, ...], argv: list[str], cwd=None) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        f"for name in {hidden!r}:\n    sys.modules[name] = None\n"
        "from rmsnorm_core.cli._cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    run = subprocess.run
    return run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "hidden,preset,skipped,ran",
    [(("jax", "flax"), "llama", "flax", "torch-eager"),
     (("torch",), "flax", "torch", "flax-linen")],
    ids=["without-jax", "without-torch"],
)  # fmt: skip
def test_verify_skips_a_backend_whose_framework_is_missing(hidden, preset, skipped, ran):
    pytest.importorskip("torch")
    pytest.importorskip("flax")
    argv = ["verify", "--quick", "--preset", preset, "--backend", ran, "--backend", skipped]
    out = _run(hidden, argv)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    # the skip is a row of its own: the reason, then the exact install command
    why = re.escape(f"not installed ({', '.join(hidden)})")
    row = rf"^{skipped}\s+{why}\s+pip install -e '\.\[{skipped}\]'$"
    assert re.search(row, out.stdout, re.M), out.stdout[-2000:]
    assert " 0 failed; 1 skipped (runners or backends)" in out.stdout
    assert out.stdout.splitlines()[-1].startswith("exit 0: all ")
    assert "(1 skipped: not run, not passed)" in out.stdout.splitlines()[-1]


def test_convert_says_which_backend_a_file_would_need(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"model.norm.weight": torch.ones(8)}, tmp_path / "m.pt")
    out = _run(("torch",), ["convert", "m.pt", "o.safetensors", "--preset", "llama"], tmp_path)
    assert out.returncode == 2
    assert "cannot tell the format of 'm.pt'" in out.stderr
    assert "(backends not installed: torch)" in out.stderr
    assert not (tmp_path / "o.safetensors").exists()


def test_onnx_export_without_onnx_runtime_is_refused_before_writing(tmp_path):
    torch = pytest.importorskip("torch")
    from rmsnorm_core.cli._cli import main

    torch.save({"model.norm.weight": torch.ones(8)}, tmp_path / "m.pt")
    assert main(["convert", str(tmp_path / "m.pt"), str(tmp_path / "n.safetensors"),
                 "--preset", "llama"]) == 0  # fmt: skip
    argv = ["export", "n.safetensors", "--onnx", "n.onnx", "--torchscript", "n.pt"]
    out = _run(("onnx", "onnxruntime"), argv, tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "--onnx with --exporter dynamo needs onnx, onnxruntime, not installed" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "n.onnx").exists() and not (tmp_path / "n.pt").exists()
