"""``rmsnorm verify --report``'s fields (issue 32 item 4): backend and runner apart, a
bit share only where judged, a runner call's time once, skips in their own list, every
field documented, and ``--baseline`` still reading a version 2 report."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from _verify_backends import reference_runner
from _verify_backends import with_gradients as _with_gradients

from rmsnorm_core.backends import Backend, Runner
from rmsnorm_core.cli._cli import main
from rmsnorm_core.verify._records import Record, Skip
from rmsnorm_core.verify._report_json import report_doc, upgrade_record

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "verify-report.md"


def test_records_name_backend_and_runner_and_time_each_call_once(registered, tmp_path):
    registered(Backend("grads", runners=(Runner("grads-oracle", _with_gradients, gradients=True),)))
    registered(Backend("numpyref", runners=(reference_runner("numpyref-oracle"),)))
    report = tmp_path / "r.json"
    argv = ["verify", "--quick", "--preset", "gemma", "--backend", "grads"]
    assert main([*argv, "--backend", "numpyref", "--report", str(report)]) == 0
    doc = json.loads(report.read_text())
    records = doc["records"]
    assert doc["report_version"] == 3
    assert {(r["backend"], r["runner"]) for r in records} == {
        ("grads", "grads-oracle"),
        ("numpyref", "numpyref-oracle"),
    }
    cross = [r for r in records if r["check"] == "cross"]
    assert cross and {(r["runner"], r["against"]) for r in cross} == {
        ("numpyref-oracle", "grads-oracle")
    }
    forward = [r for r in records if r["check"] == "forward"]
    grads = [r for r in records if r["check"] == "gradients"]
    assert grads and all(r["seconds"] is None for r in grads)  # timed on their forward record
    assert all(r["seconds"] > 0 for r in forward)
    assert sum(r["seconds"] for r in forward) <= doc["jobs"] * doc["seconds"]
    assert doc["calls"] == len(forward) and doc["not_applicable"] == 0
    for r in forward:  # a share is recorded only where a floor judged it
        judged = r["bit_share_required"] is not None
        assert (r["bit_share"] is not None) == judged
        assert not judged or (r["dtype"] == "bfloat16" and r["bit_share"] >= 0.98)
    assert all(r["bit_share"] is None for r in forward if r["dtype"] == "float32")
    assert doc["counts"] == {
        "pass": sum(r["status"] == "pass" for r in records),
        "fail": sum(r["status"] == "fail" for r in records),
        "varies": sum(r["status"] == "varies" for r in records),
    }
    assert doc["skipped"] == [] and all(r["status"] != "skipped" for r in records)


def _as_version_2(doc: dict) -> dict:
    """A version 3 report as version 2 wrote it: runner names under ``backend``, a cross
    check named ``vs <backend>`` under the other backend's name, skips as records."""
    old = []
    for r in doc["records"]:
        r = dict(r)
        if r["check"] == "cross":
            r.update(check=f"vs {r['against'].split('-')[0]}")
        else:
            r.update(backend=r["runner"])
        for new in ("runner", "against", "ratio", "bit_share_required"):
            r.pop(new)
        old.append(r)
    skipped = dict(spec="*", spec_json={}, case="*", dtype="*", shape=[], backend="gone",
                   check="forward", status="skipped", reason="not installed (gone)")  # fmt: skip
    return {**doc, "report_version": 2, "records": [*old, skipped]}


def test_a_version_2_baseline_is_read_check_by_check(registered, tmp_path, capsys):
    registered(Backend("ora", runners=(reference_runner("ora-one"),)))
    registered(Backend("orb", runners=(reference_runner("orb-one"),)))
    argv = ["verify", "--quick", "--preset", "llama", "--backend", "ora", "--backend", "orb"]
    assert main([*argv, "--report", str(tmp_path / "new.json")]) == 0
    old = _as_version_2(json.loads((tmp_path / "new.json").read_text()))
    moved = next(r for r in old["records"] if r["backend"] == "orb-one")
    moved["digest"] = "0" * 64  # one forward output whose bits "changed" since
    (tmp_path / "old.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert main([*argv, "--baseline", str(tmp_path / "old.json")]) == 1
    out = capsys.readouterr().out
    assert re.search(r"bits changed\s+1\n", out) and "regression     0" in out
    assert f"BITS CHANGED orb-one forward {moved['dtype']} llama {moved['case']}" in out
    # version 2 named a cross check by backend: counted apart, not judged
    crosses = sum(r["check"].startswith("vs ") for r in old["records"])
    assert f"only before    {crosses}  (not judged)" in out
    assert out.splitlines()[-1].startswith("exit 1: all ")


@pytest.mark.parametrize(
    "old,new",
    [
        ({"backend": "torch-eager", "check": "gradients"},
         {"backend": None, "runner": "torch-eager", "check": "gradients", "against": "reference"}),
        ({"backend": "torch", "check": "vs flax"},
         {"backend": "torch", "runner": "torch", "check": "cross", "against": "flax"}),
        ({"backend": "torch = hf-llama", "check": "bits"},
         {"backend": "torch", "runner": "upstream-hf-llama", "check": "bits", "against": "torch"}),
    ],
    ids=["gradients", "cross", "bits"],
)  # fmt: skip
def test_an_older_record_is_read_under_the_current_names(old, new):
    assert upgrade_record({**old, "status": "pass"}, 2) == {**new, "status": "pass"}
    assert upgrade_record({**old, "status": "pass"}, 3) == {**old, "status": "pass"}
    assert upgrade_record({**old, "status": "skipped"}, 2) is None


def _documented(section: str) -> set[str]:
    text = PAGE.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", body, re.M))


def test_every_field_of_the_report_is_documented_in_the_reference():
    doc = report_doc([], [], versions={}, seconds=0.0, jobs=1, calls=0, not_applicable=0)
    assert _documented("The document") == set(doc)
    assert _documented("Records") == {f.name for f in dataclasses.fields(Record)}
    assert _documented("Skipped") == {f.name for f in dataclasses.fields(Skip)}
    assert "reference/verify-report.md" in (ROOT / "mkdocs.yml").read_text()
