"""``rmsnorm verify --baseline``: every field the comparison reads is checked before the run
(issue 30 item 8). A record whose ``reason`` was not a string raised ``TypeError`` after
the whole run and no ``--report`` was written; now any bad field is one line naming the
field, the value and what is accepted, exit 2, and nothing runs."""

from __future__ import annotations

import copy
import json
import re

import pytest

from rmsnorm_core.backends import Backend, Runner, register_backend, unregister_backend
from rmsnorm_core.cli._cli import main
from rmsnorm_core.testing import Outcome, expected_forward


def _exact(p):
    return Outcome(*expected_forward(p))


ARGV = ["verify", "--quick", "--preset", "llama", "--backend", "oracle"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A real report of the oracle runner (the exact reference), as a dict."""
    register_backend(Backend("oracle", runners=(Runner("oracle-eager", _exact),)))
    path = tmp_path_factory.mktemp("base") / "old.json"
    try:
        assert main([*ARGV, "--report", str(path)]) == 0
    finally:
        unregister_backend("oracle")
    return json.loads(path.read_text())


def _record(field, value):
    def edit(doc):
        doc["records"][0][field] = value

    return edit


def _top(field, value):
    return lambda doc: doc.update({field: value})


BAD = [
    ("reason-int", _record("reason", 3), r"record 0 has reason=3; accepted: a string"),
    ("reason-null", _record("reason", None), r"record 0 has reason=null; accepted: a string"),
    ("digest-int", _record("digest", 5), r"has digest=5; accepted: null or a SHA-256"),
    ("digest-short", _record("digest", "abc"), r"has digest=\"abc\"; accepted: null or a SHA"),
    ("status-word", _record("status", "passed"), r"has status=\"passed\"; accepted: 'pass', 'f"),
    ("status-null", _record("status", None), r"has status=null; accepted: 'pass', 'fail', 'v"),
    ("shape-text", _record("shape", "2x8"), r"has shape=\"2x8\"; accepted: a list of ints >= 0"),
    ("shape-bool", _record("shape", [True]), r"has shape=\[true\]; accepted: a list of ints"),
    ("spec-int", _record("spec", 1), r"record 0 has spec=1; accepted: a string"),
    ("runner-list", _record("runner", ["a"]), r"has runner=\[\"a\"\]; accepted: a string"),
    ("spec-json-list", _record("spec_json", []), r"has spec_json=\[\]; accepted: a JSON object"),
    ("version-text", _top("report_version", "2"), r"has report_version=\"2\"; accepted: 1 or 2"),
    ("version-newer", _top("report_version", 4), r"has report_version=4; accepted: 1 or 2 or 3"),
    ("version-bool", _top("report_version", True), r"has report_version=true; accepted: 1 or"),
    ("versions-list", _top("versions", []), r"has versions=\[\]; accepted: a JSON object of str"),
    ("versions-int", _top("versions", {"torch": 2}), r"has versions=\{\"torch\": 2\}; accepted"),
    ("record-lacks", lambda d: d["records"][0].pop("case"), r"record 0 lacks 'case'; accepted"),
]


@pytest.mark.parametrize("edit,match", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_field_is_refused_before_the_run(report, edit, match, tmp_path, capsys):
    doc = copy.deepcopy(report)
    edit(doc)
    (tmp_path / "old.json").write_text(json.dumps(doc))
    new = tmp_path / "new.json"
    argv = [*ARGV, "--baseline", str(tmp_path / "old.json"), "--report", str(new)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"rmsnorm verify: error: --baseline '{tmp_path / 'old.json'}'"), err
    assert re.search(match, err), err
    assert "passed" not in captured.out and not new.exists()  # nothing ran


def test_upper_case_digests_are_the_same_bits(report, tmp_path, capsys):
    doc = copy.deepcopy(report)
    for r in doc["records"]:
        if r.get("digest"):
            r["digest"] = r["digest"].upper()
    assert any(r.get("digest") for r in doc["records"])
    (tmp_path / "old.json").write_text(json.dumps(doc))
    register_backend(Backend("oracle", runners=(Runner("oracle-eager", _exact),)))
    try:
        assert main([*ARGV, "--baseline", str(tmp_path / "old.json")]) == 0
    finally:
        unregister_backend("oracle")
    assert f"  {'bits changed':14s} 0" in capsys.readouterr().out
