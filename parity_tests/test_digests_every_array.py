"""A file that carries digests carries one for every array, and a load checks every one
(issue 30 item 5): a neutral checkpoint or an Orbax checkpoint whose digest map lacks an
entry (or is empty) no longer loads a damaged array as other numbers; an unparseable
``_CHECKPOINT_METADATA`` no longer drops the digests; upper-case hex is the same digest."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rmsnorm_core import NeutralLayer, RMSNormError, RMSNormSpec, array_digest, load, save
from rmsnorm_core.cli._cli import main
from rmsnorm_core.io._safetensors import read_file, serialize


def _layers() -> dict[str, NeutralLayer]:
    rng = np.random.default_rng(3)
    spec = RMSNormSpec.preset("flax")
    return {
        f"layers_{i}.norm": NeutralLayer(spec, rng.standard_normal(8).astype(np.float32))
        for i in range(2)
    }


def _neutral(path: Path, digests) -> Path:
    """A neutral checkpoint whose second tensor's payload is damaged (one value changed)
    and whose ``sha256`` metadata is ``digests(good digests)``."""
    layers = _layers()
    save(path, layers)  # the layers metadata as save writes it
    meta, tensors = read_file(path)
    good = {name: array_digest(t) for name, t in tensors.items()}
    tensors["layers_1.norm.scale"] = tensors["layers_1.norm.scale"].copy()
    tensors["layers_1.norm.scale"][2] = 1e6  # the damage a missing digest used to let in
    meta["sha256"] = json.dumps(digests(good))
    path.write_bytes(serialize(tensors, meta))
    return path


def _drop(name):
    return lambda good: {k: v for k, v in good.items() if k != name}


NEUTRAL = [
    ("one-missing", _drop("layers_1.norm.scale"), r"tensor 'layers_1.norm.scale' has no digest"),
    ("empty-map", lambda good: {}, r"tensor 'layers_0.norm.scale' has no digest \(2 without\)"),
    (
        "extra-digest",
        lambda good: {**good, "layers_9.norm.scale": "0" * 64},
        r"a digest names tensor 'layers_9.norm.scale', which the file does not hold",
    ),
    (
        "not-hex",
        lambda good: {**good, "layers_1.norm.scale": "xyz"},
        r"the digest of tensor 'layers_1.norm.scale' is 'xyz'; expected a SHA-256",
    ),
    ("not-a-map", lambda good: list(good), r"the digests are a list; expected a JSON object"),
    (
        "upper-case-still-checked",
        lambda good: {k: v.upper() for k, v in good.items()},
        r"tensor 'layers_1.norm.scale' does not match the SHA-256 written with it",
    ),
]


@pytest.mark.parametrize("digests,match", [c[1:] for c in NEUTRAL], ids=[c[0] for c in NEUTRAL])
def test_a_neutral_file_with_digests_has_one_for_every_tensor(digests, match, tmp_path):
    path = _neutral(tmp_path / "c.safetensors", digests)
    with pytest.raises(RMSNormError, match=r"checkpoint '.*c.safetensors': " + match):
        load(path)


def test_upper_case_hex_is_the_same_digest(tmp_path):
    layers = _layers()
    save(tmp_path / "c.safetensors", layers)
    meta, tensors = read_file(tmp_path / "c.safetensors")
    meta["sha256"] = json.dumps({k: array_digest(t).upper() for k, t in tensors.items()})
    (tmp_path / "c.safetensors").write_bytes(serialize(tensors, meta))
    back = load(tmp_path / "c.safetensors")
    assert all(back[n].equals(layers[n]) for n in layers)


@pytest.fixture
def orbax_ck(tmp_path):
    """An Orbax checkpoint ``rmsnorm convert`` wrote, and its layers."""
    pytest.importorskip("orbax.checkpoint")
    pytest.importorskip("jax")
    layers = _layers()
    save(tmp_path / "a.safetensors", layers)
    ck = tmp_path / "ck"
    assert main(["convert", str(tmp_path / "a.safetensors"), str(ck), "--to", "orbax"]) == 0
    return ck, layers


def _edit_meta(ck: Path, edit) -> None:
    meta = json.loads((ck / "_CHECKPOINT_METADATA").read_text())
    edit(meta)
    (ck / "_CHECKPOINT_METADATA").write_text(json.dumps(meta))


def _ours(meta):
    return meta["custom_metadata"]["rmsnorm_bridge"]


SCALE1 = "params/layers_1/norm/scale"
ORBAX = [
    ("one-missing", lambda m: _ours(m)["sha256"].pop(SCALE1), rf"array '{SCALE1}' has no digest"),
    ("empty-map", lambda m: _ours(m).update(sha256={}), r"has no digest \(2 without\)"),
    (
        "custom-metadata-list",
        lambda m: m.update(custom_metadata=["rmsnorm_bridge"]),
        r"_CHECKPOINT_METADATA: custom_metadata is a list; expected an object",
    ),
    (
        "ours-list",
        lambda m: m["custom_metadata"].update(rmsnorm_bridge=[1]),
        r"custom_metadata\['rmsnorm_bridge'\] is \[1\]; expected an object with 'sha256'",
    ),
    (
        "digests-list",
        lambda m: _ours(m).update(sha256=[]),
        r"the digests are a list; expected a JSON object",
    ),
]


@pytest.mark.parametrize("edit,match", [c[1:] for c in ORBAX], ids=[c[0] for c in ORBAX])
def test_an_orbax_checkpoint_with_digests_has_one_for_every_array(
    edit, match, orbax_ck, tmp_path, capsys
):
    ck, _ = orbax_ck
    _edit_meta(ck, edit)
    out = tmp_path / "b.safetensors"
    assert main(["convert", str(ck), str(out), "--preset", "flax"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"input '{ck}'" in err, err
    assert re.search(match, err), err
    assert not out.exists()


def test_an_unparseable_checkpoint_metadata_is_refused(orbax_ck, tmp_path, capsys):
    ck, _ = orbax_ck
    text = (ck / "_CHECKPOINT_METADATA").read_bytes()
    (ck / "_CHECKPOINT_METADATA").write_bytes(b"!" + text[1:])  # one byte: not JSON
    out = tmp_path / "b.safetensors"
    assert main(["convert", str(ck), str(out), "--preset", "flax"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"input '{ck}': _CHECKPOINT_METADATA is not valid JSON" in err, err
    assert not out.exists()


def test_orbax_upper_case_hex_is_the_same_digest(orbax_ck, tmp_path):
    ck, layers = orbax_ck
    _edit_meta(
        ck, lambda m: _ours(m).update(sha256={k: v.upper() for k, v in _ours(m)["sha256"].items()})
    )
    out = tmp_path / "b.safetensors"
    assert main(["convert", str(ck), str(out), "--preset", "flax"]) == 0
    back = load(out)
    assert all(back[n].scale.tobytes() == layers[n].scale.tobytes() for n in layers)
