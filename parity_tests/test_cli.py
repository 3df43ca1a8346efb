"""The ``rmsnorm`` command line: exit codes and messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from rmsnorm_core import RMSNormSpec
from rmsnorm_core.cli._cli import main


def test_presets_lists_every_preset(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in RMSNormSpec.presets():
        assert f"{name} " in out


def test_spec_prints_valid_json_with_overrides(capsys):
    assert main(["spec", "gemma", "--set", "eps=1e-5", "--set", "axes=[1]"]) == 0
    spec = RMSNormSpec.from_json(capsys.readouterr().out)
    assert spec == RMSNormSpec.preset("gemma", eps=1e-5, axes=(1,))


@pytest.mark.parametrize(
    "argv,match",
    [
        (["spec", "--set", "eps=-1"], r"rmsnorm spec: error: eps=-1 is not accepted"),
        (["spec", "mistral"], r"preset='mistral' is not a preset"),
        (["spec", "--set", "eps"], r"--set 'eps' is not accepted; expected FIELD=VALUE"),
    ],
    ids=["bad-eps", "unknown-preset", "set-without-value"],
)
def test_bad_values_exit_2_with_a_message(argv, match, capsys):
    assert main(argv) == 2
    assert re.search(match, capsys.readouterr().err)


def test_console_script_help_and_unknown_option():
    ok = subprocess.run(
        [sys.executable, "-m", "rmsnorm_core", "--help"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "usage: rmsnorm" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "rmsnorm_core", "presets", "--frobnicate"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "unrecognized arguments: --frobnicate" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_spec_json_is_machine_readable(capsys):
    main(["spec", "llama"])
    assert json.loads(capsys.readouterr().out)["cast_order"] == "before_scale"
