"""``rmsnorm verify``'s ``self`` rows (issue 31 item 5): every runner's output against its
backend's first runner (eager) bit for bit; a difference fails unless the runner declares
a runtime with kernels of its own (``bit_variance``), which reports it as ``varies``."""

from __future__ import annotations

import json

import numpy as np
from _verify_backends import reference_runner

from rmsnorm_core.backends import Backend, Runner, backends
from rmsnorm_core.cli._cli import main
from rmsnorm_core.testing import Outcome, expected_forward


def _one_ulp_off(p):
    y, s = expected_forward(p)
    y = y.copy()
    if y.size:
        y.flat[0] = np.nextafter(y.flat[0], np.inf, dtype=y.dtype)
    return Outcome(y, s)


def test_self_rows_require_the_first_runners_bits(registered, tmp_path, capsys):
    registered(Backend("selfy", runners=(
        reference_runner("selfy-eager"),
        reference_runner("selfy-script"),  # the same bits: passes
        Runner("selfy-export", _one_ulp_off),  # one element off: fails
        Runner("selfy-ort", _one_ulp_off, bit_variance="kernels of its own"),
    )))  # fmt: skip
    report = tmp_path / "r.json"
    argv = ["verify", "--quick", "--preset", "torch", "--backend", "selfy", "--report", str(report)]
    assert main(argv) == 1
    rows = [r for r in json.loads(report.read_text())["records"] if r["check"] == "self"]
    status = {r["runner"]: r["status"] for r in rows if r["shape"] and r["shape"][0]}
    assert status == {"selfy-script": "pass", "selfy-export": "fail", "selfy-ort": "varies"}
    ort = next(r for r in rows if r["runner"] == "selfy-ort" and r["shape"][0])
    assert 0.9 < ort["bit_share"] < 1.0 and "kernels of its own" in ort["reason"]
    assert not any(r["runner"] == "selfy-eager" for r in rows)  # the reference of the rows
    assert "self" in capsys.readouterr().out


def test_the_torch_runners_that_must_match_eager_declare_nothing():
    """script, export and the Python CPU kernel are held to eager's bits (the quick verify
    run in test_verify.py and the full run judge them); only runtimes with kernels of their
    own may differ, and each says why."""
    torch_runners = {r.name: r for r in backends()["torch"].runners}
    for name in ("torch-script", "torch-export", "torch-eager-python-cpu"):
        assert torch_runners[name].bit_variance == "", name
    for name in ("torch-compile", "ort-torchscript-17", "ort-dynamo-18"):
        assert torch_runners[name].bit_variance, name


def test_a_report_with_varies_rows_is_a_baseline(registered, tmp_path, capsys):
    """A report that holds ``varies`` records reads back as ``--baseline``; a check that was
    identical and now varies (or the reverse) is a bit change, a varies check that fails
    is a regression."""
    registered(Backend("selfy", runners=(
        reference_runner("selfy-eager"),
        Runner("selfy-ort", _one_ulp_off, bit_variance="kernels of its own"),
    )))  # fmt: skip
    report = tmp_path / "r.json"
    argv = ["verify", "--quick", "--preset", "torch", "--backend", "selfy"]
    assert main([*argv, "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    rows = [r for r in doc["records"] if r["check"] == "self" and r["status"] == "varies"]
    assert rows and all(r["digest"] and len(r["digest"]) == 64 for r in rows)
    assert main([*argv, "--baseline", str(report)]) == 0  # read back; nothing changed
    for r in rows:  # the same checks identical before: now they vary
        r["status"], r["digest"] = "pass", "0" * 64
    report.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main([*argv, "--baseline", str(report)]) == 1
    assert "output bits changed" in capsys.readouterr().out
