"""Every JSON reader refuses a key given twice and integers of absurd length, in one line:
Python's ``json`` keeps the last duplicate silently and reads a 400-digit integer, which
then overflowed float() in a traceback or passed as an axis."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from rmsnorm_core import RMSNormError, RMSNormSpec, load
from rmsnorm_core.cli._cli import main
from rmsnorm_core.io._safetensors import serialize
from rmsnorm_core.spec._json import MAX_INT_DIGITS, loads_strict

HUGE = "1" * 400
SPEC_TEXTS = [
    ("dup-eps", '{"eps": 1e-6, "eps": 0.5}', r"the key 'eps' appears twice in one object"),
    ("dup-nested", '{"axes": [-1], "axes": [-1]}', r"the key 'axes' appears twice"),
    ("huge-eps", f'{{"eps": {HUGE}}}', r"the integer 1{12}\.\.\. has 400 digits; at most 20"),
    ("huge-axis", f'{{"axes": [{HUGE}]}}', r"has 400 digits"),
    ("huge-axes-int", f'{{"axes": -{HUGE}}}', r"the integer -1{11}\.\.\. has 400 digits"),
    ("huge-partial", f'{{"partial": {HUGE}}}', r"has 400 digits"),
    ("huge-version", f'{{"schema_version": {HUGE}}}', r"has 400 digits"),
]


@pytest.mark.parametrize("text,match", [c[1:] for c in SPEC_TEXTS], ids=[c[0] for c in SPEC_TEXTS])
def test_spec_json_refuses_duplicates_and_huge_integers(text, match):
    with pytest.raises(RMSNormError, match=r"^spec JSON is not accepted: .*" + match):
        RMSNormSpec.from_json(text)


def test_the_digit_limit_is_exact():
    edge = "9" * MAX_INT_DIGITS
    assert loads_strict(f"[{edge}, -{edge}]", "x") == [int(edge), -int(edge)]
    with pytest.raises(RMSNormError, match=rf"has {MAX_INT_DIGITS + 1} digits"):
        loads_strict(f"[{edge}9]", "x")


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("eps", 10**400, r"eps=1000.*\(401 characters\) is not accepted; it is too large"),
        ("partial", 10**400, r"partial=1000.*is not accepted; it is too large for a float"),
        ("axes", (10**400,), r"axis 1000.* is out of range: every axis must satisfy -64 <="),
        ("axes", 64, r"axes=\(64,\) is not accepted; axis 64 is out of range"),
        ("axes", (-1, -65), r"axis -65 is out of range: every axis must satisfy -64 <= axis < 64"),
    ],
    ids=["eps-10**400", "partial-10**400", "axis-10**400", "axis-64", "axis--65"],
)
def test_spec_fields_refuse_huge_integers_from_python(field, value, match):
    with pytest.raises(RMSNormError, match=match):
        RMSNormSpec(**{field: value})


def test_axes_at_the_rank_limit_are_accepted():
    assert RMSNormSpec(axes=(63, -64)).axes == (63, -64)


def test_verify_spec_file_with_a_duplicate_key_exits_2(tmp_path, capsys):
    (tmp_path / "s.json").write_text('{"eps": 1e-6, "cast_order": "before_scale", "eps": 0.5}')
    assert main(["verify", "--quick", "--spec", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the key 'eps' appears twice" in err, err


def _neutral(path, layers_text: str):
    """A neutral checkpoint whose ``layers`` metadata is ``layers_text``, byte for byte."""
    metadata = {"format": "rmsnorm-bridge", "format_version": "1", "layers": layers_text}
    path.write_bytes(serialize({"n.scale": np.ones(4, np.float32)}, metadata))
    return path


SPEC = json.dumps(RMSNormSpec().to_dict())
LAYERS = [
    (
        "dup-layer",
        f'{{"n": {{"spec": {SPEC}, "param_shape": [4]}}, "n": {{"spec": {SPEC}, "param_shape": [4]}}}}',
        r"the key 'n' appears twice",
    ),
    (
        "dup-spec-key",
        '{"n": {"spec": {"eps": 1e-6, "eps": 0.5}, "param_shape": [4]}}',
        r"the key 'eps' appears twice",
    ),
    (
        "dup-param-shape",
        f'{{"n": {{"spec": {SPEC}, "param_shape": [4], "param_shape": [4]}}}}',
        r"the key 'param_shape' appears twice",
    ),
    (
        "huge-eps",
        f'{{"n": {{"spec": {{"eps": {HUGE}}}, "param_shape": [4]}}}}',
        r"has 400 digits",
    ),
    ("huge-shape", f'{{"n": {{"spec": {SPEC}, "param_shape": [{HUGE}]}}}}', r"has 400 digits"),
]
COMMANDS = {
    "verify": lambda f, t: ["verify", "--quick", "--weights", str(f)],
    "convert": lambda f, t: ["convert", str(f), str(t / "out.safetensors")],
    "export": lambda f, t: ["export", str(f), "--torchscript", str(t / "out.pt")],
}


@pytest.mark.parametrize("text,match", [c[1:] for c in LAYERS], ids=[c[0] for c in LAYERS])
def test_checkpoint_layers_refuse_duplicates_and_huge_integers(text, match, tmp_path):
    path = _neutral(tmp_path / "c.safetensors", text)
    with pytest.raises(RMSNormError, match=r"the 'layers' metadata is not accepted: .*" + match):
        load(path)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", ["dup-layer", "huge-eps"])
def test_commands_refuse_such_layers_in_one_line(case, command, tmp_path, capsys):
    if command == "export":
        pytest.importorskip("torch")
    _, text, match = next(c for c in LAYERS if c[0] == case)
    path = _neutral(tmp_path / "c.safetensors", text)
    assert main(COMMANDS[command](path, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())


def test_set_refuses_a_huge_integer_and_a_duplicate_key(capsys):
    assert main(["spec", "--set", f"eps={HUGE[:200]}"]) == 2
    assert "--set eps=... is not accepted: the integer" in capsys.readouterr().err
    assert main(["spec", "--set", 'axes={"a": 1, "a": 2}']) == 2
    assert "the key 'a' appears twice" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["layers", "sha256"])
def test_a_metadata_entry_given_twice_in_the_safetensors_header_is_refused(key, tmp_path):
    """The safetensors library keeps the last of two equal ``__metadata__`` keys: a second
    ``layers`` (another eps) or ``sha256`` entry would win silently."""
    from rmsnorm_core import neutral_layer, save

    path = tmp_path / "twice.safetensors"
    save(path, {"n": neutral_layer("n", RMSNormSpec(), np.ones(4, np.float32), None)})
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    assert key in header["__metadata__"]  # a file this project writes carries both
    text = data[8 : 8 + length].decode()
    entry = f'"{key}":' + json.dumps(header["__metadata__"][key])
    twice = text.replace('"__metadata__":{', '"__metadata__":{' + entry + ",", 1)
    assert twice != text
    padded = twice.encode().ljust(len(twice) + (-len(twice)) % 8)
    path.write_bytes(len(padded).to_bytes(8, "little") + padded + data[8 + length :])
    with pytest.raises(RMSNormError, match=rf"the key '{key}' appears twice"):
        load(path)
