"""``rmsnorm bench -k``: a name copied from ``--list`` selects its case (case names hold
``[...]``, which a glob reads as a character class), ``-k`` repeats, a filter that
selects nothing is an error with the close names, and a case skipped for a missing
module names the install command (found by a hostile probe of issue 32's work)."""

from __future__ import annotations

import pytest

from rmsnorm_core.bench._bench import Benchmark, run_one
from rmsnorm_core.cli._cli import main
from rmsnorm_core.cli._cli_bench import selected

NAME = "torch.eager.forward[float32]"


def test_an_exact_name_a_glob_and_several_filters_select():
    assert selected(NAME, [NAME])
    assert selected(NAME, ["torch.eager.*"])
    assert selected(NAME, ["nothing", "torch.*"])
    assert selected(NAME, None)
    assert not selected(NAME, ["torch.eager.forward[bfloat16]"])
    assert not selected(NAME, ["TORCH.*"])  # case-sensitive on every platform


def test_list_with_exact_names_prints_each(capsys):
    pytest.importorskip("torch")
    other = "torch.decode.torch.forward[float32 1x4096]"
    assert main(["bench", "--list", "-k", NAME, "-k", other]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" vs ")[0].rstrip() for line in lines] == [NAME, other]


def test_a_filter_that_selects_nothing_names_the_close_cases(capsys):
    pytest.importorskip("torch")
    assert main(["bench", "--list", "-k", "torch.eager.forwrd[float32]"]) == 2
    err = capsys.readouterr().err
    assert "-k 'torch.eager.forwrd[float32]' matches no benchmark" in err
    assert f"did you mean '{NAME}'" in err


def test_a_skipped_case_names_the_install_command():
    bench = Benchmark("x", "y", lambda: (print, print), None, ("a_module_nobody_has",))
    result = run_one(bench)
    assert result.status.startswith("skipped: a_module_nobody_has is not installed (pip install")
