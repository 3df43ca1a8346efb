"""config.json of a Hugging Face folder: every field read is checked, every read bounded.

A wrong type is a one-line error naming the field (``true`` is not eps 1.0); a FIFO or
``/dev/zero`` as config.json is refused at once instead of hanging or filling memory.
"""

from __future__ import annotations

import json
import os

import pytest
from test_checkpoint_folders import _hf_folder

from rmsnorm_core.cli._cli import main

BAD_FIELDS = [
    (
        "eps-true",
        {"model_type": "llama", "rms_norm_eps": True},
        2,
        r"rms_norm_eps=True; expected a number",
    ),
    (
        "eps-string",
        {"model_type": "llama", "rms_norm_eps": "abc"},
        2,
        r"rms_norm_eps='abc'; expected a number",
    ),
    (
        "eps-list",
        {"model_type": "llama", "rms_norm_eps": [1]},
        2,
        r"rms_norm_eps=\[1\]; expected a number",
    ),
    (
        "t5-eps-true",
        {"model_type": "t5", "layer_norm_epsilon": True},
        2,
        r"layer_norm_epsilon=True",
    ),
    ("model-type-list", {"model_type": ["llama"]}, 2, r"model_type=\['llama'\], whose norms"),
    ("eps-negative", {"model_type": "llama", "rms_norm_eps": -1}, 2, r"eps=-1.0 is not accepted"),
]


@pytest.mark.parametrize(
    "config,code,match", [c[1:] for c in BAD_FIELDS], ids=[c[0] for c in BAD_FIELDS]
)
def test_bad_config_field_is_one_line_naming_it(config, code, match, tmp_path, capsys):
    import re

    folder, _ = _hf_folder(tmp_path)
    (folder / "config.json").write_text(json.dumps(config))
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(match, err), err
    assert not (tmp_path / "n.safetensors").exists()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_config_that_never_ends_is_refused(kind, tmp_path, capsys):
    folder, _ = _hf_folder(tmp_path)
    (folder / "config.json").unlink()
    if kind == "fifo":
        os.mkfifo(folder / "config.json")
    else:
        os.symlink("/dev/zero", folder / "config.json")
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == 2
    assert "is not a regular file" in capsys.readouterr().err


def test_oversized_config_is_refused(tmp_path, capsys):
    folder, _ = _hf_folder(tmp_path)
    with open(folder / "config.json", "w") as f:
        f.write('{"model_type": "llama", "pad": "' + "x" * (17 * 1024 * 1024) + '"}')
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == 2
    assert "larger than" in capsys.readouterr().err
