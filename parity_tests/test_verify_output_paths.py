"""``rmsnorm verify``'s output paths (``--report``, ``--diff``): each is checked before the
run (its folder exists or is made, it is not a folder), and the report is written before
the diff, so a diff that cannot be written never loses the run's report."""

from __future__ import annotations

import pytest

from rmsnorm_core import RMSNormError
from rmsnorm_core.backends import Backend, Runner
from rmsnorm_core.cli import _cli_verify
from rmsnorm_core.cli._cli import main
from rmsnorm_core.testing import Outcome, expected_forward


@pytest.fixture
def counted(registered):
    """A backend that returns the reference; ``calls[0]`` counts the problems it ran."""
    calls = [0]

    def run(p):
        calls[0] += 1
        return Outcome(*expected_forward(p))

    registered(Backend("counted", runners=(Runner("counted-eager", run),)))
    return calls


def _verify(*extra):
    return main(["verify", "--quick", "--preset", "llama", "--backend", "counted", *extra])


def _bad_paths(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder").mkdir()
    return {
        "under-a-file": str(tmp_path / "file" / "d.json"),
        "a-folder": str(tmp_path / "folder"),
    }


@pytest.mark.parametrize("bad", ["under-a-file", "a-folder"])
@pytest.mark.parametrize("flag", ["--diff", "--report"])
def test_a_bad_output_path_is_refused_before_the_run(counted, tmp_path, capsys, flag, bad):
    assert _verify("--report", str(tmp_path / "base.json")) == 0
    capsys.readouterr()
    calls = counted[0]
    path = _bad_paths(tmp_path)[bad]
    outputs = {"--report": str(tmp_path / "r2.json"), "--diff": str(tmp_path / "d.json"), flag: path}
    argv = ["--baseline", str(tmp_path / "base.json")]
    assert _verify(*argv, *(a for kv in outputs.items() for a in kv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"rmsnorm verify: error: {flag} {path!r}"), err
    assert counted[0] == calls  # nothing ran
    assert not (tmp_path / "r2.json").exists() and not (tmp_path / "d.json").exists()


def test_the_report_is_written_before_the_diff(counted, tmp_path, monkeypatch, capsys):
    assert _verify("--report", str(tmp_path / "base.json")) == 0
    diff = tmp_path / "d.json"
    real = _cli_verify.write_atomic

    def write_atomic(path, data):
        if str(path) == str(diff):
            raise RMSNormError(f"cannot write {str(path)!r}: No space left on device")
        return real(path, data)

    monkeypatch.setattr(_cli_verify, "write_atomic", write_atomic)
    argv = ["--baseline", str(tmp_path / "base.json"), "--diff", str(diff)]
    assert _verify(*argv, "--report", str(tmp_path / "r2.json")) == 2
    assert (tmp_path / "r2.json").read_bytes().startswith(b"{")
    assert not diff.exists()


def test_a_report_to_stdout_keeps_the_stream_to_itself(counted, capfd):
    """``--report /dev/stdout``: stdout carries the JSON report alone; the table and the
    summary go to stderr."""
    import json

    assert _verify("--report", "/dev/stdout") == 0
    out, err = capfd.readouterr()
    doc = json.loads(out)  # the whole stream is one JSON document
    assert doc["records"] and all(r["status"] == "pass" for r in doc["records"])
    assert "counted-eager" in err and "exit 0" in err
