"""``rmsnorm convert`` and ``rmsnorm export`` as a user runs them."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")
pytest.importorskip("onnxruntime")

from types import SimpleNamespace  # noqa: E402

from rmsnorm_core import NeutralLayer, RMSNormSpec, load, save  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_in_jax_serve_in_torch.py"


def rmsnorm(*args, cwd, in_process=True):
    """Run the CLI in ``cwd``: in this process (fast; what the installed script runs),
    or, for the round trip below, as ``python -m rmsnorm_core`` in a subprocess."""
    argv = [str(a) for a in args]
    if not in_process:
        return subprocess.run(
            [sys.executable, "-m", "rmsnorm_core", *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
        )
    out, err, before = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code
    finally:
        os.chdir(before)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture
def checkpoint(tmp_path):
    layers = {
        "layers.0.norm": NeutralLayer(
            RMSNormSpec.preset("gemma"), np.linspace(-0.5, 0.5, 16, dtype=np.float32)
        ),
        "layers.1.norm": NeutralLayer(
            RMSNormSpec.preset("gemma"), np.linspace(0.5, -0.5, 16, dtype=np.float32)
        ),
    }
    save(tmp_path / "ck.safetensors", layers)
    return tmp_path / "ck.safetensors", layers


def test_convert_neutral_torch_flax_neutral_round_trip(tmp_path, checkpoint):
    path, layers = checkpoint
    assert rmsnorm("convert", path, "sd.pt", cwd=tmp_path, in_process=False).returncode == 0
    r = rmsnorm("convert", "sd.pt", "p.msgpack", "--preset", "gemma", cwd=tmp_path)
    assert r.returncode == 0 and "layers_0.norm" in r.stdout, r.stderr
    r = rmsnorm(
        "convert",
        "p.msgpack",
        "back.safetensors",
        "--preset",
        "gemma",
        "--names",
        "flax-to-torch",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    back = load(tmp_path / "back.safetensors")
    assert sorted(back) == sorted(layers) and all(back[k].equals(layers[k]) for k in layers)


def test_convert_torch_safetensors_state_dict(tmp_path):
    from rmsnorm_core.io._safetensors import serialize

    w = np.arange(8).astype(ml_dtypes.bfloat16)
    (tmp_path / "hf.safetensors").write_bytes(
        serialize(
            {"model.norm.weight": w, "lm_head.weight": np.ones((2, 8), np.float32)},
            {"format": "pt"},
        )
    )
    r = rmsnorm(
        "convert",
        "hf.safetensors",
        "n.safetensors",
        "--to",
        "neutral",
        "--preset",
        "llama",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    (layer,) = load(tmp_path / "n.safetensors").values()
    assert (
        layer.spec == RMSNormSpec.preset("llama", param_dtype="bfloat16")
        and layer.scale.tobytes() == w.tobytes()
    )


@pytest.mark.parametrize(
    "args,code,match",
    [
        (
            ["convert", "missing.pt", "out.safetensors", "--preset", "llama"],
            2,
            "input 'missing.pt' does not exist",
        ),
        (
            ["convert", "sd.pt", "out.safetensors"],
            2,
            "--preset is required to read a flax or torch file",
        ),
        (["convert", "ck.safetensors", "nofolder/out.pt"], 2, "folder 'nofolder' does not exist"),
        (["convert", "ck.safetensors", "out.xyz"], 2, "cannot tell the format of 'out.xyz'"),
        (["convert", "ck.safetensors"], 2, "the following arguments are required: dst"),
        (
            ["convert", "ck.safetensors", "o.pt", "--frobnicate"],
            2,
            "unrecognized arguments: --frobnicate",
        ),
        (["export", "ck.safetensors"], 2, "nothing to export"),
        (
            ["export", "missing.safetensors", "--onnx", "o.onnx"],
            2,
            "checkpoint 'missing.safetensors' does not exist",
        ),
        (
            ["export", "ck.safetensors", "--onnx", "nofolder/o.onnx"],
            2,
            "--onnx 'nofolder/o.onnx': folder 'nofolder' does not exist",
        ),
        (
            ["export", "ck.safetensors", "--onnx", "o.onnx", "--opset", "12"],
            2,
            "--opset 12 is not accepted with --exporter dynamo; expected 17 to 23",
        ),
    ],
    ids=[
        "missing-input",
        "no-preset",
        "unwritable",
        "unknown-format",
        "missing-arg",
        "unknown-option",
        "nothing-to-export",
        "missing-checkpoint",
        "export-unwritable",
        "bad-opset",
    ],
)
def test_bad_usage_and_failures(tmp_path, checkpoint, args, code, match):
    (tmp_path / "sd.pt").write_bytes(b"not a torch file")
    r = rmsnorm(*args, cwd=tmp_path)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert match in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("out.*")) and not list(tmp_path.glob("o.*"))


def test_malicious_pickle_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import torch

    torch.save({"model.norm.weight": Evil()}, tmp_path / "evil.pt")
    r = rmsnorm("convert", "evil.pt", "out.safetensors", "--preset", "llama", cwd=tmp_path)
    assert r.returncode == 2 and "weights_only=True" in r.stderr
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_export_runs_the_artifacts_and_reports_errors(tmp_path, checkpoint):
    r = rmsnorm(
        "export",
        "ck.safetensors",
        "--torchscript",
        "n.pt",
        "--onnx",
        "n.onnx",
        "--opset",
        "17",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "4 passed, 0 failed" in r.stdout and "[2/2] layers.1.norm" in r.stdout
    assert sorted(p.name for p in tmp_path.glob("n.*")) == [
        "n.layers.0.norm.onnx",
        "n.layers.0.norm.pt",
        "n.layers.1.norm.onnx",
        "n.layers.1.norm.pt",
    ]


def test_example_trains_bridges_and_matches(tmp_path):
    r = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", "5"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for backend in ("torch eager", "TorchScript", "ONNX Runtime"):
        assert backend in r.stdout
