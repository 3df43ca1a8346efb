"""``rmsnorm verify``: the main job's exit codes, table and report."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

from rmsnorm_core import NeutralLayer, RMSNormSpec, save
from rmsnorm_core._cli import main

pytest.importorskip("torch")
pytest.importorskip("jax")


def test_quick_run_passes_and_writes_the_report(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rmsnorm_core",
            "verify",
            "--quick",
            "--report",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0 failed, 0 skipped" in r.stdout
    for backend in (
        "flax linen (jit)",
        "flax nnx",
        "torch eager",
        "TorchScript",
        "ORT torchscript-17",
        "flax vs torch",
    ):
        assert backend in r.stdout
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["versions"]["torch"] != "not installed" and doc["counts"]["fail"] == 0
    record = doc["records"][0]
    assert {
        "spec",
        "spec_json",
        "backend",
        "dtype",
        "shape",
        "max_abs",
        "max_rel",
        "status",
        "seconds",
    } <= set(record)
    assert {r["spec"] for r in doc["records"]} >= set(RMSNormSpec.presets())


def test_a_broken_backend_fails_the_run(monkeypatch, capsys):
    from rmsnorm_torch import _verify_backends

    real = _verify_backends.backends

    def broken():
        runners = real()
        eager = runners["torch eager"]

        def wrong(p):  # eps placed outside the root: the classic port bug
            y, s, grads = eager(p)
            return y * np.asarray(1.01, y.dtype), s, grads

        return {"torch eager": wrong}

    monkeypatch.setattr(_verify_backends, "backends", broken)
    assert main(["verify", "--quick", "--preset", "torch", "--backend", "torch eager"]) == 1
    out = capsys.readouterr().out
    assert "FAIL torch eager forward" in out and "elements outside" in out


def test_a_missing_framework_is_skipped_not_passed(monkeypatch, capsys):
    real_import = importlib.import_module

    def no_flax(name, *args):
        if name == "rmsnorm_flax._verify_backends":
            raise ImportError("No module named 'jax'", name="jax")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_flax)
    assert (
        main(
            [
                "verify",
                "--quick",
                "--preset",
                "gemma",
                "--backend",
                "torch eager",
                "--backend",
                "flax linen (jit)",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "skipped: not installed (jax)" in out and "1 skipped" in out


def test_verify_a_checkpoint_with_its_own_weights(tmp_path, capsys):
    layers = {
        "enc.norm": NeutralLayer(
            RMSNormSpec.preset("llama", axes=(1,)), np.linspace(0.5, 2, 12, dtype=np.float32)
        )
    }
    save(tmp_path / "ck.safetensors", layers)
    assert (
        main(
            [
                "verify",
                "--quick",
                "--weights",
                str(tmp_path / "ck.safetensors"),
                "--report",
                str(tmp_path / "r.json"),
                "--backend",
                "torch eager",
                "--backend",
                "flax linen (jit)",
            ]
        )
        == 0
    )
    records = json.loads((tmp_path / "r.json").read_text())["records"]
    assert {r["spec"] for r in records} == {"enc.norm"} and all(
        r["status"] == "pass" for r in records
    )
    assert {r["backend"] for r in records} == {"torch eager", "flax linen (jit)", "flax vs torch"}


@pytest.mark.parametrize(
    "argv,code,match",
    [
        (
            ["verify", "--spec", "a.json", "--weights", "b.safetensors"],
            2,
            "--spec and --weights are exclusive",
        ),
        (["verify", "--preset", "mistral"], 2, "preset='mistral' is not a preset"),
        (["verify", "--report", "/no/such/folder/r.json"], 2, "its folder does not exist"),
        (["verify", "--weights", "missing.safetensors"], 1, "does not exist"),
        (["verify", "--spec", "missing.json"], 1, "cannot be read"),
    ],
    ids=["exclusive", "unknown-preset", "report-folder", "missing-weights", "missing-spec"],
)
def test_bad_usage(argv, code, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    assert match in capsys.readouterr().err
