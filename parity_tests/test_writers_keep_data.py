"""Writers never destroy what they did not write (issue: data loss in convert/export).

Each case runs the command as a user would and checks that it is refused with a
clear message and that every file that was there before is there after, byte for byte.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rmsnorm_core import NeutralLayer, RMSNormSpec, load, neutral_layer, save
from rmsnorm_core.cli._cli import main
from rmsnorm_core.spec._errors import RMSNormError


def _checkpoint(path):
    spec = RMSNormSpec.preset("llama")
    save(
        path,
        {"norm": neutral_layer("norm", spec, np.linspace(0.5, 1.5, 8, dtype=np.float32), None)},
    )
    return path


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_orbax_refuses_a_folder_that_is_not_an_orbax_checkpoint(tmp_path, capsys):
    pytest.importorskip("orbax.checkpoint")
    src = _checkpoint(tmp_path / "norms.safetensors")
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    (work / "sub").mkdir()
    (work / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _snapshot(tmp_path)
    assert main(["convert", str(src), str(work), "--to", "orbax"]) == 2
    assert "is not an Orbax checkpoint" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_orbax_refuses_the_working_folder(tmp_path, capsys, monkeypatch):
    pytest.importorskip("orbax.checkpoint")
    (tmp_path / "in").mkdir()
    src = _checkpoint(tmp_path / "in" / "norms.safetensors")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path / "work")
    before = _snapshot(tmp_path)
    assert main(["convert", str(src), ".", "--to", "orbax"]) == 2
    # the check every command runs refuses it first; the writer refuses it on its own too
    assert "DST '.' is the current working directory" in capsys.readouterr().err
    from rmsnorm_flax.interop._orbax import save_orbax

    with pytest.raises(RMSNormError, match="is not an Orbax checkpoint"):
        save_orbax(Path("."), load(src))
    assert _snapshot(tmp_path) == before and src.exists()


def test_orbax_replaces_its_own_checkpoint(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    src = _checkpoint(tmp_path / "norms.safetensors")
    assert main(["convert", str(src), str(tmp_path / "ck"), "--to", "orbax"]) == 0
    assert main(["convert", str(src), str(tmp_path / "ck"), "--to", "orbax"]) == 0


@pytest.mark.parametrize(
    "outputs",
    [
        ["--torchscript", "{d}/x.pt", "--onnx", "{d}/x.pt"],
        ["--torchscript", "{src}"],
        ["--onnx", "{link}"],
    ],
    ids=["two-flags-one-file", "output-is-the-input", "output-links-to-the-input"],
)
def test_export_refuses_colliding_outputs(outputs, tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    src = _checkpoint(tmp_path / "one.safetensors")
    os.symlink(src, tmp_path / "link.onnx")
    argv = [a.format(d=tmp_path, src=src, link=tmp_path / "link.onnx") for a in outputs]
    before = _snapshot(tmp_path)
    assert main(["export", str(src), *argv]) == 2
    assert "is the same file as" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def test_convert_refuses_to_overwrite_its_input(tmp_path, capsys):
    src = _checkpoint(tmp_path / "one.safetensors")
    before = _snapshot(tmp_path)
    assert main(["convert", str(src), str(src)]) == 2
    assert "DST" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before


def _neutral(tmp_path):
    rng = np.random.default_rng(3)
    layers = {
        "model.layers.0.input_layernorm": NeutralLayer(
            RMSNormSpec.preset("gemma", eps=1e-5), rng.standard_normal(16).astype(np.float32)
        ),
        "model.norm": NeutralLayer(
            RMSNormSpec.preset("llama", eps=3e-6), rng.standard_normal(16).astype(np.float32)
        ),
    }
    save(tmp_path / "n.safetensors", layers)
    return tmp_path / "n.safetensors", layers


def test_to_hf_refuses_a_model_folder_and_changes_nothing(tmp_path, capsys):
    src, _ = _neutral(tmp_path)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model-00001-of-00001.safetensors").write_bytes(b"model weights")
    index = json.dumps({"weight_map": {"lm_head.weight": "model-00001-of-00001.safetensors"}})
    (model / "model.safetensors.index.json").write_text(index)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    assert main(["convert", str(src), str(model), "--to", "hf"]) == 2
    assert "holds files this writer did not write" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


def test_to_hf_output_reads_back_with_every_layer_spec_and_can_be_rewritten(tmp_path):
    src, layers = _neutral(tmp_path)
    out = tmp_path / "hf"
    assert main(["convert", str(src), str(out), "--to", "hf"]) == 0
    assert not (out / "config.json").exists()  # the per-layer specs travel in their own file
    assert main(["convert", str(out), str(tmp_path / "back.safetensors")]) == 0
    back = load(tmp_path / "back.safetensors")
    assert set(back) == set(layers)
    for name, layer in layers.items():
        assert back[name].spec == layer.spec and back[name].scale.tobytes() == layer.scale.tobytes()
    assert main(["convert", str(src), str(out), "--to", "hf"]) == 0  # over its own output


def test_to_hf_refuses_a_layer_without_a_scale(tmp_path, capsys):
    free = NeutralLayer(RMSNormSpec(use_scale=False))
    save(tmp_path / "n.safetensors", {"free": free})
    assert (
        main(["convert", str(tmp_path / "n.safetensors"), str(tmp_path / "hf"), "--to", "hf"]) == 2
    )
    assert "have no scale" in capsys.readouterr().err


def test_convert_to_a_json_path_without_to_is_refused(tmp_path, capsys):
    src, _ = _neutral(tmp_path)
    assert main(["convert", str(src), str(tmp_path / "out.json")]) == 2
    assert "names no format" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize(
    "file, text",
    [
        ("model.safetensors.index.json", "[]"),
        ("rmsnorm_layers.json", "[]"),
        ("model.safetensors.index.json", '{"weight_map": []}'),
        ("rmsnorm_layers.json", '{"layers": [1]}'),
    ],
    ids=["index-list", "sidecar-list", "weight-map-list", "layers-list"],
)
def test_to_hf_refuses_a_folder_whose_json_has_another_shape(tmp_path, capsys, file, text):
    """JSON of another shape than the writer's is not a folder this command wrote."""
    src, _ = _neutral(tmp_path)
    out = tmp_path / "hf"
    assert main(["convert", str(src), str(out), "--to", "hf"]) == 0
    (out / file).write_text(text)
    before = _snapshot(out)
    capsys.readouterr()
    assert main(["convert", str(src), str(out), "--to", "hf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds files this writer did not write" in err[0], err
    assert _snapshot(out) == before
