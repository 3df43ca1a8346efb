"""``--to orbax`` replaces only a checkpoint it wrote.

A folder holding a file named ``_METADATA`` or ``_CHECKPOINT_METADATA`` is not
necessarily ours: a user's folder with such a file, an Orbax checkpoint written
elsewhere, or one of ours with a user's file or an extra array added are each
refused with one line naming the folder, exit 2, every file left byte for byte.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")

from rmsnorm_core import RMSNormSpec, neutral_layer, save  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402


def _source(tmp_path):
    spec = RMSNormSpec.preset("llama")
    layers = {"norm": neutral_layer("norm", spec, np.linspace(0.5, 1.5, 8, dtype=np.float32), None)}
    save(tmp_path / "one.safetensors", layers)
    return tmp_path / "one.safetensors"


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _user_folder(target):
    target.mkdir()
    (target / "important.txt").write_text("precious")
    (target / "_METADATA").touch()


def _foreign_checkpoint(target):
    import orbax.checkpoint as ocp

    tree = {"params": {"embed": {"embedding": np.arange(12, dtype=np.float32).reshape(3, 4)}}}
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(target, tree)
    checkpointer.wait_until_finished()


def _ours_plus_a_user_file(target):
    assert main(["convert", str(_source(target.parent)), str(target), "--to", "orbax"]) == 0
    (target / "important.txt").write_text("precious")


def _ours_with_a_foreign_digest(target):
    """Our checkpoint whose metadata names an array that is not in its tree."""
    assert main(["convert", str(_source(target.parent)), str(target), "--to", "orbax"]) == 0
    meta = json.loads((target / "_CHECKPOINT_METADATA").read_text())
    meta["custom_metadata"]["rmsnorm_bridge"]["sha256"]["params/embed/embedding"] = "0" * 64
    (target / "_CHECKPOINT_METADATA").write_text(json.dumps(meta))


def _foreign_checkpoint_with_our_entry(target):
    """A checkpoint written elsewhere, its metadata claiming to be ours."""
    _foreign_checkpoint(target)
    meta = json.loads((target / "_CHECKPOINT_METADATA").read_text())
    meta["custom_metadata"] = {"rmsnorm_bridge": {"sha256": {"params/embed/embedding": "0"}}}
    (target / "_CHECKPOINT_METADATA").write_text(json.dumps(meta))


FOREIGN = {
    "user-folder-with-METADATA": _user_folder,
    "orbax-checkpoint-written-elsewhere": _foreign_checkpoint,
    "ours-plus-a-user-file": _ours_plus_a_user_file,
    "ours-with-a-digest-of-another-array": _ours_with_a_foreign_digest,
    "elsewhere-claiming-our-entry": _foreign_checkpoint_with_our_entry,
}


@pytest.mark.parametrize("make", FOREIGN.values(), ids=FOREIGN.keys())
def test_a_folder_this_writer_did_not_write_is_refused_and_kept(tmp_path, capsys, make):
    src = _source(tmp_path)
    target = tmp_path / "dst"
    make(target)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    assert main(["convert", str(src), str(target), "--to", "orbax"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"cannot write {str(target)!r}: it exists and is not an Orbax checkpoint this" in err
    assert _snapshot(tmp_path) == before


def test_an_empty_folder_is_written(tmp_path):
    (tmp_path / "dst").mkdir()
    assert main(["convert", str(_source(tmp_path)), str(tmp_path / "dst"), "--to", "orbax"]) == 0
    assert (tmp_path / "dst" / "_CHECKPOINT_METADATA").is_file()
