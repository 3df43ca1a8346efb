"""A launched runner's problem that raises is named in the error, which ends with the
problem's own exception (the launch reports a failed rank's last line for every problem
of the launch: without the name, one broken problem reads as all of them)."""

from __future__ import annotations

import pytest

from rmsnorm_core import RMSNormError, RMSNormSpec
from rmsnorm_core.parity._problem_files import load_outcomes, save_problems, serve_problems
from rmsnorm_core.testing import Outcome, make_problem


def _problems():
    return [make_problem(RMSNormSpec.preset(name), "float32", (2, 8), residual=name == "gemma")
            for name in ("torch", "llama", "gemma")]  # fmt: skip


@pytest.fixture
def rank0(tmp_path, monkeypatch):
    monkeypatch.setenv("RMSNORM_RANK", "0")
    monkeypatch.setenv("RMSNORM_OUT", str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    return tmp_path


def test_a_raising_problem_is_named_with_its_error(rank0):
    save_problems(rank0, _problems())
    llama = RMSNormSpec.preset("llama")

    def run(p):
        if p.spec == llama:
            raise ValueError("broken for llama")
        return Outcome(p.x, None)

    pattern = (r"^problem 2 of 3 \(x float32 \(2, 8\); eps 1e-06, before_scale, output promote, "
               r"offset 0.0\) raised ValueError: broken for llama$")  # fmt: skip
    with pytest.raises(RMSNormError, match=pattern) as caught:
        serve_problems(rank0, run)
    assert isinstance(caught.value.__cause__, ValueError)
    assert not list((rank0 / "out").iterdir())  # no outcomes written for a failed launch


def test_every_problem_runs_and_rank_0_writes_the_outcomes(rank0):
    problems = _problems()
    save_problems(rank0, problems)
    serve_problems(rank0, lambda p: Outcome(p.x * 2, p.residual))
    outcomes = load_outcomes(rank0 / "out", len(problems))
    assert [o.y.tolist() for o in outcomes] == [(p.x * 2).tolist() for p in problems]
    assert outcomes[2].s is not None and outcomes[0].s is None
