"""An output inside an input folder, a ``--to hf`` output named by its index, the
working directory as an output, and a crafted index: each refused before anything
is written (the check every command runs, and the Hugging Face writer's own)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rmsnorm_core import RMSNormSpec, neutral_layer, save
from rmsnorm_core.cli import _cli_docs
from rmsnorm_core.cli._cli import main
from rmsnorm_core.cli._cli_paths import refuse_collisions
from rmsnorm_core.io._hf_checkpoint import INDEX, write_layers
from rmsnorm_core.io._safetensors import serialize
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError

SCALE = np.linspace(0.5, 1.5, 8, dtype=np.float32)


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _layers():
    return {"norm": neutral_layer("norm", RMSNormSpec.preset("llama"), SCALE, None)}


@pytest.fixture
def hf_a(tmp_path, monkeypatch):
    """A Hugging Face folder: config, index and one shard with a norm and an embedding."""
    folder = tmp_path / "hf_a"
    folder.mkdir()
    tensors = {"model.norm.weight": SCALE, "model.embed_tokens.weight": np.ones((4, 8), "f4")}
    (folder / "model.safetensors").write_bytes(serialize(tensors, {"format": "pt"}))
    index = {"weight_map": dict.fromkeys(tensors, "model.safetensors")}
    (folder / INDEX).write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    os.symlink(folder, tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    return folder


def _refused(argv, capsys, output, other, how):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{output} '" in err and f"{other} '" in err and how in err, err


@pytest.mark.parametrize("dst", ["hf_a/model.safetensors", "link/model.safetensors", "hf_a/n"])
def test_an_output_file_inside_the_input_folder_is_refused(hf_a, capsys, dst):
    before = _snapshot(hf_a.parent)
    _refused(["convert", "hf_a", dst], capsys, "DST", "SRC", "is inside the folder")
    assert _snapshot(hf_a.parent) == before


def test_an_output_inside_an_orbax_style_input_folder_is_refused(tmp_path, capsys):
    """The check runs before the input is read: any input folder is protected."""
    folder = tmp_path / "orb_a"
    folder.mkdir()
    (folder / "_CHECKPOINT_METADATA").write_text("{}")
    argv = ["convert", str(folder), str(folder / "_CHECKPOINT_METADATA"), "--to", "neutral"]
    _refused([*argv, "--preset", "flax"], capsys, "DST", "SRC", "is inside the folder")
    assert (folder / "_CHECKPOINT_METADATA").read_text() == "{}"


def test_docs_build_inside_the_docs_source_is_refused(capsys, monkeypatch):
    def built(*args, **kwargs):
        raise AssertionError("mkdocs ran")

    monkeypatch.setattr(_cli_docs.subprocess, "run", built)
    sub = _cli_docs.SOURCE / "docs" / "sub-built-by-a-test"
    _refused(["docs", "--build", str(sub)], capsys, "--build", "the docs source", "inside")
    assert not sub.exists()


def test_to_hf_named_by_the_index_is_the_folder_it_replaces(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save("one.safetensors", _layers())
    assert main(["convert", "one.safetensors", "hfo", "--to", "hf"]) == 0
    capsys.readouterr()
    before = _snapshot(tmp_path)
    argv = ["convert", "hfo", f"hfo/{INDEX}", "--to", "hf"]
    _refused(argv, capsys, "DST", "SRC", "is the same file as")
    assert _snapshot(tmp_path) == before


def test_to_hf_over_the_working_directory_is_refused(tmp_path, capsys, monkeypatch):
    save(tmp_path / "one.safetensors", _layers())
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    inode = os.stat(".").st_ino
    assert main(["convert", "../one.safetensors", INDEX, "--to", "hf"]) == 2
    err = capsys.readouterr().err
    assert "DST" in err and "current working directory" in err, err
    assert os.stat(tmp_path / "empty").st_ino == inode and not os.listdir(tmp_path / "empty")


def test_an_output_holding_the_working_directory_is_refused(tmp_path, monkeypatch):
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    for out in (".", "..", str(tmp_path / "a")):
        with pytest.raises(RMSNormUsageError, match="DST .* current working directory"):
            refuse_collisions({}, {"DST": out})
    refuse_collisions({}, {"DST": "c"})  # a new path inside it is fine


def test_the_hf_writer_never_replaces_the_working_directory(tmp_path, monkeypatch):
    """The library call, without the CLI's check: the folder replace refuses it."""
    monkeypatch.chdir(tmp_path)
    for target in (INDEX, "."):
        with pytest.raises(RMSNormError, match="current working directory"):
            write_layers(tmp_path / target, _layers())
    assert not os.listdir(tmp_path)


def test_a_crafted_index_cannot_make_the_hf_writer_delete_a_file(tmp_path, capsys):
    save(tmp_path / "one.safetensors", _layers())
    hfo = tmp_path / "hfo"
    assert main(["convert", str(tmp_path / "one.safetensors"), str(hfo), "--to", "hf"]) == 0
    (hfo / "important.txt").write_text("keep me")
    index = json.loads((hfo / INDEX).read_text())
    index["weight_map"]["norm.bias"] = "important.txt"  # a tensor name the sidecar allows
    (hfo / INDEX).write_text(json.dumps(index))
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "one.safetensors"), str(hfo), "--to", "hf"]) == 2
    assert "holds files this writer did not write" in capsys.readouterr().err
    assert (hfo / "important.txt").read_text() == "keep me"
