"""The neutral checkpoint: round trips, interop, and refusal of bad files."""

from __future__ import annotations

import json
import os
import pickle

import ml_dtypes
import numpy as np
import pytest

from rmsnorm_core import NeutralLayer, RMSNormError, RMSNormSpec, load, save, with_scale_offset
from rmsnorm_core.io._safetensors import serialize

DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def _layers(dtype="float32"):
    rng = np.random.default_rng(0)
    t = DTYPES[dtype]
    return {
        "layers.0.norm": NeutralLayer(
            RMSNormSpec.preset("gemma", param_dtype=dtype), rng.standard_normal(16).astype(t)
        ),
        "enc.norm": NeutralLayer(
            RMSNormSpec(axes=(1, 3), use_bias=True, param_dtype=dtype),
            rng.standard_normal((3, 5)).astype(t),
            rng.standard_normal((3, 5)).astype(t),
        ),
        "plain": NeutralLayer(RMSNormSpec(use_scale=False)),
    }


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_round_trip_is_bit_identical(tmp_path, dtype):
    layers = _layers(dtype)
    layers["layers.0.norm"].scale[3] = np.nan  # NaN payloads survive too
    save(tmp_path / "c.safetensors", layers)
    back = load(tmp_path / "c.safetensors")
    assert sorted(back) == sorted(layers)
    assert all(back[k].equals(layers[k]) for k in layers)


def test_files_open_with_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors import safe_open

    save(tmp_path / "c.safetensors", _layers("bfloat16"))
    with safe_open(str(tmp_path / "c.safetensors"), framework="pt") as f:
        assert f.metadata()["format"] == "rmsnorm-bridge"
        assert f.get_tensor("enc.norm.bias").dtype == torch.bfloat16
        assert set(f.keys()) == {"layers.0.norm.scale", "enc.norm.scale", "enc.norm.bias"}


def test_save_over_existing_file_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save(path, _layers())
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(
        RMSNormError, match=r"cannot write '.*c.safetensors': disk full \(simulated\)"
    ):
        save(path, {"x": NeutralLayer(RMSNormSpec(), np.ones(4, np.float32))})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]


def test_offset_conversion_is_explicit_and_exact_in_float32():
    gemma = NeutralLayer(RMSNormSpec.preset("gemma"), np.array([0.0, 0.5, -1.0], np.float32))
    plain = with_scale_offset(gemma, 0.0)
    assert plain.spec.scale_offset == 0.0
    assert np.array_equal(plain.scale, np.array([1.0, 1.5, 0.0], np.float32))
    assert with_scale_offset(plain, 1.0).equals(gemma)


def _raw(tmp_path, layers=None):
    save(tmp_path / "good.safetensors", layers or _layers())
    return (tmp_path / "good.safetensors").read_bytes()


def _header(raw):
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + size]), raw[8 + size :]


def _rebuild(header, data):
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def _edit_meta(tmp_path, fn):
    header, data = _header(_raw(tmp_path))
    fn(header)
    return _rebuild(header, data)


def _edit_layers(tmp_path, fn):
    def edit(header):
        layers = json.loads(header["__metadata__"]["layers"])
        fn(layers)
        header["__metadata__"]["layers"] = json.dumps(layers)

    return _edit_meta(tmp_path, edit)


BAD_FILES = [
    ("empty", lambda t: b"", r"not a valid safetensors file .*header too small"),
    ("truncated", lambda t: _raw(t)[:-5], r"truncated or corrupt"),
    ("header-only", lambda t: _raw(t)[:40], r"truncated or corrupt"),
    (
        "pickle",
        lambda t: pickle.dumps({"weight": [1.0, 2.0]}),
        r"truncated or corrupt|not a safetensors file",
    ),
    (
        "random-bytes",
        lambda t: bytes(range(256)) * 4,
        r"truncated or corrupt|not a safetensors file",
    ),
    (
        "not-ours",
        lambda t: serialize({"w": np.ones(3, np.float32)}, {"format": "pt"}),
        r"is not an rmsnorm-bridge checkpoint",
    ),
    (
        "newer-version",
        lambda t: _edit_meta(t, lambda h: h["__metadata__"].update(format_version="3")),
        r"format_version='3'; this library reads versions 1, 2",
    ),
    (
        "layers-not-json",
        lambda t: _edit_meta(t, lambda h: h["__metadata__"].update(layers="{oops")),
        r"the 'layers' metadata is not valid JSON",
    ),
    (
        "bad-spec",
        lambda t: _edit_layers(t, lambda m: m["plain"]["spec"].update(eps=-1)),
        r"layer 'plain' has an invalid spec: eps=-1 is not accepted",
    ),
    (
        "unknown-spec-key",
        lambda t: _edit_layers(t, lambda m: m["plain"]["spec"].update(mode2=1)),
        r"layer 'plain' has an invalid spec: unknown spec key",
    ),
    (
        "dtype-disagrees",
        lambda t: _edit_layers(
            t, lambda m: m["layers.0.norm"]["spec"].update(param_dtype="float16")
        ),
        r"layer 'layers.0.norm': scale has dtype float32 but the spec has param_dtype='float16'",
    ),
    (
        "shape-disagrees",
        lambda t: _edit_layers(t, lambda m: m["layers.0.norm"].update(param_shape=[8])),
        r"layer 'layers.0.norm': scale has shape \(16,\) but the checkpoint records param_shape \(8,\)",
    ),
    (
        "missing-tensor",
        lambda t: _edit_layers(t, lambda m: m["plain"]["spec"].update(use_scale=True)),
        r"layer 'plain' is missing tensor 'plain.scale'",
    ),
    (
        "extra-tensor",
        lambda t: _edit_layers(t, lambda m: m.pop("layers.0.norm")),
        r"holds tensors no layer claims: \['layers.0.norm.scale'\]",
    ),
    (
        "rank-disagrees",
        lambda t: _edit_layers(t, lambda m: m["layers.0.norm"]["spec"].update(axes=[-2, -1])),
        r"scale has shape \(16,\), rank 1, but the spec normalizes 2 axes",
    ),
    (
        "int-dtype",
        lambda t: _edit_meta(t, lambda h: h["layers.0.norm.scale"].update(dtype="I32")),
        r"tensor 'layers.0.norm.scale' has dtype 'I32'",
    ),
    (
        "offsets-outside",
        lambda t: _edit_meta(t, lambda h: h["layers.0.norm.scale"].update(data_offsets=[0, 10**9])),
        r"invalid offset for tensor .layers.0.norm.scale.",
    ),
    (
        "bias-without-spec",
        lambda t: _edit_layers(t, lambda m: m["enc.norm"]["spec"].update(use_bias=False)),
        r"layer 'enc.norm': a bias tensor is present but the spec has use_bias=False",
    ),
    (  # one payload byte flipped: safetensors has no checksum, our digests catch it
        "payload-damaged",
        lambda t: _raw(t)[:-3] + bytes([_raw(t)[-3] ^ 0x40]) + _raw(t)[-2:],
        r"tensor '.*' does not match the SHA-256 written with it; the file is damaged",
    ),
    (
        "digests-not-json",
        lambda t: _edit_meta(t, lambda h: h["__metadata__"].update(sha256="[oops")),
        r"the 'sha256' metadata is not valid JSON",
    ),
]


@pytest.mark.parametrize("case_id,make,match", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_are_refused_with_a_clear_error(tmp_path, case_id, make, match):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(make(tmp_path))
    with pytest.raises(RMSNormError, match=match) as err:
        load(path)
    assert "bad.safetensors" in str(err.value)


def test_a_file_written_before_digests_loads_unchecked(tmp_path):
    path = tmp_path / "old.safetensors"
    path.write_bytes(_edit_meta(tmp_path, lambda h: h["__metadata__"].pop("sha256")))
    back = load(path)
    assert all(back[n].equals(layer) for n, layer in _layers().items())


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(RMSNormError, match=r"checkpoint '.*nope.safetensors' does not exist"):
        load(tmp_path / "nope.safetensors")
    with pytest.raises(RMSNormError, match=r"is a folder, not a file"):
        load(tmp_path)
    with pytest.raises(RMSNormError, match=r"folder '.*missing' does not exist"):
        save(tmp_path / "missing" / "c.safetensors", _layers())


def test_layers_must_match_their_spec():
    with pytest.raises(RMSNormError, match=r"the spec has use_scale=True but no scale tensor"):
        NeutralLayer(RMSNormSpec())
    with pytest.raises(
        RMSNormError, match=r"scale has dtype float16 but the spec has param_dtype='float32'"
    ):
        NeutralLayer(RMSNormSpec(), np.ones(3, np.float16))
