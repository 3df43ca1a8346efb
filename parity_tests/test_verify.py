"""``rmsnorm verify``: the main job's exit codes, table and report."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
from _verify_backends import reference_runner as _reference_runner

from rmsnorm_core import NeutralLayer, RMSNormSpec, save
from rmsnorm_core.backends import Backend
from rmsnorm_core.cli._cli import main

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
    # compiled and ONNX Runtime runners may vary where they declare it (batch, self rows)
    varied = r"(, \d+ vary where their runtime declares it)?"
    assert re.search(rf"0 failed{varied}; nothing skipped", r.stdout), r.stdout[-2000:]
    for backend in (
        "flax-linen",
        "flax-nnx",
        "torch-eager",
        "torch-script",
        "ort-torchscript-17",
        "vs flax-linen",  # the cross-framework check: torch's output against flax's
    ):
        assert backend in r.stdout
    assert "torchvision" not in r.stdout + r.stderr, "third-party log lines leaked"
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["versions"]["torch"] != "not installed" and doc["counts"]["fail"] == 0
    record = doc["records"][0]
    assert {
        "spec",
        "spec_json",
        "backend",
        "runner",
        "against",
        "ratio",
        "bit_share_required",
        "dtype",
        "shape",
        "max_abs",
        "max_rel",
        "status",
        "seconds",
        "tolerance",
        "bit_share",
        "digest",
    } <= set(record)
    forward = next(r for r in doc["records"] if r["check"] == "forward" and r["bit_share_required"])
    assert forward["tolerance"]["rtol"] == doc["tolerances"][forward["tolerance"]["key"]]["rtol"]
    assert len(forward["digest"]) == 64 and 0.98 <= forward["bit_share"] <= 1.0
    assert {r["spec"] for r in doc["records"]} >= set(RMSNormSpec.presets())


def test_a_third_backend_registered_in_process_appears_in_the_matrix(registered, capsys):
    registered(Backend("numpyref", runners=(_reference_runner("numpyref-oracle"),)))
    argv = [
        "verify",
        "--quick",
        "--preset",
        "gemma",
        "--backend",
        "numpyref",
        "--backend",
        "torch-eager",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "numpyref-oracle" in out and "0 failed" in out
    # the cross-framework check: numpyref's output against torch's (the first backend)
    assert re.search(r"numpyref-oracle vs torch-eager\s+float32\s+\d+ vs\s+PASS", out), out


def test_a_broken_backend_fails_the_run(registered, capsys):
    registered(Backend("broken", runners=(_reference_runner("broken-eps-outside", 1.01),)))
    assert main(["verify", "--quick", "--preset", "torch", "--backend", "broken"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAIL torch \S+ float32\[[\d, ]+\] broken-eps-outside fwd: ", out), out
    assert "elements outside" in out


def test_a_missing_framework_is_skipped_not_passed(monkeypatch, capsys):
    from rmsnorm_core.registry import _backends

    monkeypatch.setitem(_backends._UNAVAILABLE, "jaxlike", "not installed (jaxlike)")
    argv = [
        "verify",
        "--quick",
        "--preset",
        "gemma",
        "--backend",
        "torch-eager",
        "--backend",
        "jaxlike",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"^jaxlike\s+not installed \(jaxlike\)\s+-$", out, re.M), out
    assert "0 failed; 1 skipped (runners or backends)" in out


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
                "torch-eager",
                "--backend",
                "flax-linen",
            ]
        )
        == 0
    )
    records = json.loads((tmp_path / "r.json").read_text())["records"]
    assert {r["spec"] for r in records} == {"enc.norm"} and all(
        r["status"] == "pass" for r in records
    )
    # "cross": the cross-framework check, torch's output against flax's
    assert {(r["backend"], r["runner"], r["check"], r["against"]) for r in records} == {
        ("torch", "torch-eager", "forward", "reference"),
        ("torch", "torch-eager", "gradients", "reference"),
        ("flax", "flax-linen", "forward", "reference"),
        ("flax", "flax-linen", "gradients", "reference"),
        ("torch", "torch-eager", "cross", "flax-linen"),
    }


@pytest.mark.parametrize(
    "argv,code,match",
    [
        (
            ["verify", "--spec", "a.json", "--weights", "b.safetensors"],
            2,
            "--spec and --weights are exclusive",
        ),
        (["verify", "--preset", "mistral"], 2, "preset='mistral' is not a preset"),
        (
            ["verify", "--report", "/dev/null/r.json"],
            2,
            "cannot create its folder: '/dev/null' is not a folder",
        ),
        (["verify", "--weights", "missing.safetensors"], 2, "does not exist"),
        (["verify", "--spec", "missing.json"], 2, "--spec 'missing.json' does not exist"),
        (
            ["verify", "--backend", "typo"],
            2,
            "--backend 'typo' is not a runner or backend; accepted: flax, flax-linen",
        ),
        (["verify", "--backend", "torch eager"], 2, "'torch eager' is not a runner or backend"),
    ],
    ids=[
        "exclusive",
        "unknown-preset",
        "report-folder",
        "missing-weights",
        "missing-spec",
        "backend-typo",
        "backend-old-label",
    ],
)
def test_bad_usage(argv, code, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == code
    assert match in capsys.readouterr().err


def test_exporting_runners_print_only_verify_output(tmp_path):
    # the dynamo exporter logs "torchvision is not installed. Skipping ..." and the
    # exporters warn; verify silences both at their source
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rmsnorm_core",
            "verify",
            "--preset",
            "llama",
            "--backend",
            "ort-dynamo-23",
            "--backend",
            "torch-compile",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    from rmsnorm_core.verify._summary import SPEC_LEGEND
    from rmsnorm_core.verify._table import LEGEND

    noise = [
        line
        for line in (r.stdout + r.stderr).splitlines()
        if line.strip()
        and not line.startswith(("[", "runner", "ort-", "torch-", "FAIL", "spec ", "llama "))
        and line not in LEGEND.splitlines() + SPEC_LEGEND.splitlines()
        and "passed" not in line
    ]
    assert not noise, noise


def test_a_runner_whose_module_is_missing_is_skipped_saying_so(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec  # onnxruntime looks uninstalled to every check
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    assert main(["verify", "--quick", "--preset", "llama", "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^ort-torchscript-17\s+needs onnxruntime\s+pip install -e '\.\[onnx\]'$", out, re.M
    ), out
    assert "0 failed" in out


def test_with_no_backend_installed_verify_says_which_to_install(monkeypatch, capsys):
    from rmsnorm_core.registry import _backends

    monkeypatch.setattr(_backends, "backends", lambda: {})
    monkeypatch.setattr(_backends, "unavailable", lambda: {})
    assert main(["verify", "--quick", "--preset", "llama"]) == 2
    assert "no backend is installed" in capsys.readouterr().err
