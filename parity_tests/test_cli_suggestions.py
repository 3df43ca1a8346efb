"""The CLI answers a mistake with what the user meant (issue 32 item 11): an argument a
subcommand does not take is reported with that subcommand's usage line, a near miss
(``lama``, ``verfy``, ``--prest``, ``cast_ordr``) names the close matches, ``verify``
takes ``--set`` as ``spec`` does, ``infer`` names the preset a measured spec equals,
and ``rmsnorm presets`` fits 100 columns."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rmsnorm_core import RMSNormError, RMSNormSpec
from rmsnorm_core.cli._cli import main, presets_table
from rmsnorm_core.cli._cli_infer import preset_named


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code
    assert code == 2
    return capsys.readouterr().err


COMMANDS = {"verify": [], "bench": [], "convert": ["a", "b"], "export": ["c"], "infer": ["m:C"]}


@pytest.mark.parametrize("command", COMMANDS)
def test_an_unknown_option_gets_the_subcommands_usage(command, capsys):
    err = _refused([command, *COMMANDS[command], "--frobnicate"], capsys)
    assert err.startswith(f"usage: rmsnorm {command} "), err
    assert f"rmsnorm {command}: error: unrecognized arguments: --frobnicate" in err, err


NEAR_MISSES = [
    (["verfy"], "invalid choice: 'verfy'", "did you mean 'verify'?"),
    (["verify", "--prest", "llama"], "unrecognized arguments: --prest llama", "'--preset'"),
    (["bench", "--set", "eps=1"], "unrecognized arguments: --set eps=1", "--set is an option of"),
    (["convert", "a", "b", "--names", "flax2torch"], "'flax2torch'", "'flax-to-torch'?"),
    (["spec", "lama"], "preset='lama' is not a preset", "did you mean 'llama'?"),
    (["spec", "llama", "--set", "cast_ordr=x"], "FIELD='cast_ordr'", "'cast_order'?"),
    (["spec", "llama", "--set", "cast_order=after-scale"], "'after-scale'", "'after_scale'"),
    (["verify", "--preset", "gema"], "preset='gema'", "did you mean 'gemma'?"),
    (["verify", "--backend", "torch-eagr"], "'torch-eagr'", "'torch-eager'"),
    (["convert", "a.safetensors", "b.x", "--from", "nuetral"], "'nuetral'", "'neutral'?"),
]


@pytest.mark.parametrize("argv,what,hint", NEAR_MISSES, ids=[" ".join(a) for a, *_ in NEAR_MISSES])
def test_a_near_miss_names_what_was_meant(argv, what, hint, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.safetensors").write_bytes(b"")
    err = _refused(argv, capsys)
    assert what in err and hint in err, err
    assert sum("error:" in line for line in err.splitlines()) == 1


def test_nothing_close_offers_nothing(capsys):
    err = _refused(["spec", "zzzzzz"], capsys)
    assert "is not a preset" in err and "did you mean" not in err
    err = _refused(["verify", "--zzzzzz"], capsys)
    assert "did you mean" not in err and "is an option of" not in err


def test_the_spec_api_suggests_too():
    with pytest.raises(RMSNormError, match=r"unknown field\(s\) \['epss'\].*did you mean 'eps'\?"):
        RMSNormSpec().replace(epss=1e-5)
    with pytest.raises(RMSNormError, match=r"did you mean 'olmo2'\?"):
        RMSNormSpec.preset("olmo")


def test_presets_prints_a_table_that_fits_100_columns(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 100
    header = lines[0].split()
    assert header[0] == "preset" and "eps" in header and "cast_order" in header
    specs = RMSNormSpec.presets()
    rows = {line.split()[0]: line.split() for line in lines[1 : 1 + len(specs)]}
    assert list(rows) == list(specs)
    for name, spec in specs.items():  # each cell read back against the spec itself
        cells = dict(zip(header, rows[name], strict=True))
        assert float(cells.pop("eps")) == pytest.approx(spec.eps, rel=1e-7)
        for field, cell in list(cells.items())[1:]:
            assert cell == str(getattr(spec, field)), (name, field)
    shared = " ".join(lines[1 + len(specs) :])
    for field in (f.name for f in dataclasses.fields(RMSNormSpec)):  # every field is shown
        assert field in header or f"{field}=" in shared, field


def test_presets_full_prints_every_spec(capsys):
    assert main(["presets", "--full"]) == 0
    out = capsys.readouterr().out
    for name, spec in RMSNormSpec.presets().items():
        assert f"{name:8s} {spec!r}" in out
    assert presets_table()[0].startswith("preset")


def test_infer_names_the_preset_a_spec_equals():
    llama = RMSNormSpec.preset("llama")
    assert preset_named(llama) == "equals the preset 'llama'"
    # Llama's norm with ONNX's eps is ONNX's RMSNormalization, field for field
    assert preset_named(llama.replace(eps=1e-5)) == "equals the preset 'onnx'"
    near = preset_named(llama.replace(eps=1e-3))
    assert near.startswith("no preset equals it; nearest: 'llama' (eps 0.001 here, 1e-06 there)")


def test_infer_prints_the_preset_on_stderr_and_json_on_stdout(capsys):
    pytest.importorskip("torch")
    assert main(["infer", "torch.nn:RMSNorm", "--init", "normalized_shape=16"]) == 0
    out, err = capsys.readouterr()
    assert RMSNormSpec.from_json(out) == RMSNormSpec.preset("torch")
    assert err.strip() == "equals the preset 'torch'"


def test_verify_takes_set_and_names_the_changed_spec(tmp_path, capsys):
    pytest.importorskip("torch")
    report = tmp_path / "r.json"
    argv = ["verify", "--quick", "--preset", "gemma", "--set", "eps=1e-5", "--backend",
            "torch-eager", "--report", str(report)]  # fmt: skip
    assert main(argv) == 0
    records = json.loads(report.read_text())["records"]
    assert records and {r["spec"] for r in records} == {"gemma+eps=1e-05"}
    assert "gemma+eps=1e-05" in capsys.readouterr().out


def test_verify_set_is_checked_and_refused_with_weights(capsys):
    err = _refused(["verify", "--set", "eps=-1"], capsys)
    assert "--set: eps=-1 is not accepted" in err
    err = _refused(["verify", "--set", "eps=1e-5", "--weights", "w.safetensors"], capsys)
    assert "--set does not go with --weights: a checkpoint carries its specs" in err
