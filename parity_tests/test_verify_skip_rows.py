"""``rmsnorm verify`` lists a runner as skipped only where the requested run would have
called it: every selection option (``--quick``, ``--preset``, ``--backend``,
``--distributed``) narrows the skip rows exactly as it narrows the runs."""

from __future__ import annotations

import json

import pytest
from _verify_backends import reference_runner

from rmsnorm_core.backends import Backend, Runner
from rmsnorm_core.cli._cli import main

MISSING = ("no_such_module_for_skip_rows",)


def _never(p):
    raise AssertionError("a runner whose module is missing was called")


def _backend() -> Backend:
    return Backend(
        "part",
        runners=(
            reference_runner("part-eager"),
            Runner("part-full", _never, quick=False, requires=MISSING),  # not in --quick
            Runner("part-large", _never, only_tag="large", requires=MISSING),  # no quick case
            Runner("upstream-part-gemma", _never, upstream="gemma", requires=MISSING),
            Runner("part-2procs", _never, distributed=True, requires=MISSING),
        ),
    )


FULL = {"part-full", "part-large"}
SELECTIONS = [
    ("quick", ["--quick", "--preset", "torch", "--backend", "part"], set()),
    ("full", ["--preset", "torch", "--backend", "part"], FULL),
    ("quick-upstream-preset", ["--quick", "--preset", "gemma", "--backend", "part"],
     {"upstream-part-gemma"}),
    ("full-distributed", ["--preset", "torch", "--backend", "part", "--distributed"],
     {*FULL, "part-2procs"}),
    ("one-runner", ["--preset", "gemma", "--backend", "part-eager"], set()),
    ("named-runner", ["--quick", "--preset", "torch", "--backend", "part-eager",
                      "--backend", "part-full"], set()),
    ("named-runner-full", ["--preset", "torch", "--backend", "part-eager",
                           "--backend", "part-large"], {"part-large"}),
]  # fmt: skip


@pytest.mark.parametrize(
    "argv,expected", [s[1:] for s in SELECTIONS], ids=[s[0] for s in SELECTIONS]
)
def test_a_skip_row_only_for_a_runner_the_run_would_call(registered, capsys, tmp_path, argv,
                                                         expected):  # fmt: skip
    registered(_backend())
    report = tmp_path / "r.json"
    assert main(["verify", *argv, "--report", str(report)]) == 0
    skipped = {s["name"]: s for s in json.loads(report.read_text())["skipped"]}
    assert set(skipped) == expected
    assert all(s["why"] == f"needs {MISSING[0]}" and s["install"] for s in skipped.values())
    out = capsys.readouterr().out.splitlines()
    listed = {ln.split()[0] for ln in out if ln.startswith(("part-", "upstream-part-"))}
    assert listed - {"part-eager"} == expected  # the table shows exactly the same skips
    note = f"{len(expected)} skipped (runners or backends)" if expected else "nothing skipped"
    assert note in "\n".join(out)
