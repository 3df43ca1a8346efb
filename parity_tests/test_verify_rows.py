"""``rmsnorm verify``'s rows that judge bits and failures: each preset against its
upstream bit for bit, a row failing on one differing element, a failure that has no
number."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from _verify_backends import reference_runner as _reference_runner

from rmsnorm_core.backends import Backend, Runner
from rmsnorm_core.cli._cli import main
from rmsnorm_core.testing import Outcome, expected_forward

pytest.importorskip("torch")
pytest.importorskip("jax")


def test_each_preset_has_a_bit_row_against_its_upstream(capsys):
    assert main(["verify", "--quick", "--backend", "torch", "--backend", "flax"]) == 0
    out = capsys.readouterr().out
    for row in ("upstream-torch = torch", "upstream-hf-llama = torch", "upstream-hf-gemma = torch",
                "upstream-hf-olmo2 = torch", "upstream-hf-t5 = torch",
                "upstream-flax-linen = flax"):  # fmt: skip
        lines = [ln for ln in out.splitlines() if ln.startswith(row + " ")]
        assert lines, row
        for line in lines:
            assert re.search(r"(\d+) bits\s+PASS\s+-\s+exact\s+100\.00% \(\1\)$", line), line


def _one_ulp_off(p):
    """An "upstream" that rounds one element of every output differently."""
    y, _ = expected_forward(p)
    y = y.copy()
    if y.size:
        y.flat[0] = np.nextafter(y.flat[0], np.inf, dtype=y.dtype)
    return Outcome(y)


def test_a_bit_row_fails_when_one_element_differs(registered, capsys):
    upstream = Runner("upstream-oracle-ulp", _one_ulp_off, residual=False, upstream="torch")
    registered(Backend("oracle", runners=(_reference_runner("oracle-exact"), upstream)))
    assert main(["verify", "--quick", "--preset", "torch", "--backend", "oracle"]) == 1
    out = capsys.readouterr().out
    assert "FAIL oracle-exact" not in out
    assert "upstream-oracle-ulp = oracle" in out and "of elements identical to ours" in out
    assert "first difference at [0, 0, 0]" in out  # _one_ulp_off moves y.flat[0]


def _crashes(p):
    raise RuntimeError("kernel exploded")


def test_a_failure_without_a_number_shows_none(registered, capsys, tmp_path):
    registered(Backend("crashy", runners=(Runner("crashy-eager", _crashes),)))
    report = tmp_path / "new" / "r.json"  # its folder is created
    argv = [
        "verify",
        "--quick",
        "--preset",
        "torch",
        "--backend",
        "crashy",
        "--report",
        str(report),
    ]
    assert main(argv) == 1
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("crashy-eager"))
    assert re.search(r"FAIL \d+\s+-\s+-\s+n/a$", row), row  # no "rel 0.0e+00"
    record = json.loads(report.read_text())["records"][0]
    assert record["max_rel"] is None and "kernel exploded" in record["reason"]
