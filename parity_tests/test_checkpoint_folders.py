"""The checkpoints people have: sharded Hugging Face folders and Orbax, round-tripped bit for bit."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from rmsnorm_core import NeutralLayer, RMSNormSpec, load, save
from rmsnorm_core.cli._cli import main
from rmsnorm_core.io._safetensors import read_file, serialize


def _hf_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "hf"
    folder.mkdir()
    norms = {
        "model.layers.0.input_layernorm.weight": rng.standard_normal(64).astype(ml_dtypes.bfloat16),
        "model.layers.1.post_attention_layernorm.weight": rng.standard_normal(64).astype(
            ml_dtypes.bfloat16
        ),
        "model.norm.weight": rng.standard_normal(64).astype(ml_dtypes.bfloat16),
    }
    others = {
        "model.embed_tokens.weight": np.zeros((1000, 64), ml_dtypes.bfloat16),
        "model.layers.0.mlp.up_proj.weight": np.zeros((128, 64), ml_dtypes.bfloat16),
    }
    shards = {
        "model-00001-of-00002.safetensors": {
            k: v for k, v in {**norms, **others}.items() if "layers.0" in k or "embed" in k
        },
        "model-00002-of-00002.safetensors": {k: v for k, v in norms.items() if "layers.0" not in k},
    }
    weight_map = {}
    for name, tensors in shards.items():
        (folder / name).write_bytes(serialize(tensors, {"format": "pt"}))
        weight_map.update(dict.fromkeys(tensors, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "rms_norm_eps": 1e-5}))
    return folder, norms


def test_sharded_hf_folder_round_trips_bit_for_bit(tmp_path, capsys):
    folder, norms = _hf_folder(tmp_path)
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == 0
    layers = load(tmp_path / "n.safetensors")
    expected_spec = RMSNormSpec.preset("llama", eps=1e-5, param_dtype="bfloat16")
    assert set(layers) == {k.removesuffix(".weight") for k in norms}
    for name, layer in layers.items():
        assert layer.spec == expected_spec and layer.source == f"torch:{name}"
        assert layer.scale.tobytes() == norms[f"{name}.weight"].tobytes()
    assert (
        main(["convert", str(tmp_path / "n.safetensors"), str(tmp_path / "out"), "--to", "hf"]) == 0
    )
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    back = {}
    for shard in set(index["weight_map"].values()):
        back.update(read_file(tmp_path / "out" / shard)[1])
    assert set(back) == set(norms)
    assert all(
        back[k].dtype == norms[k].dtype and back[k].tobytes() == norms[k].tobytes() for k in norms
    )


def test_unknown_model_type_needs_a_preset(tmp_path, capsys):
    folder, _ = _hf_folder(tmp_path)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == 2
    assert "model_type='bert'" in capsys.readouterr().err
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors"), "--preset", "llama"]) == 0


def test_orbax_round_trip_bit_for_bit(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    pytest.importorskip("jax")
    rng = np.random.default_rng(1)
    layers = {
        "layers_0.norm": NeutralLayer(
            RMSNormSpec.preset("flax"), rng.standard_normal(32).astype(np.float32)
        ),
        "final_norm": NeutralLayer(
            RMSNormSpec.preset("flax", use_bias=True),
            rng.standard_normal(32).astype(np.float32),
            rng.standard_normal(32).astype(np.float32),
        ),
    }
    save(tmp_path / "a.safetensors", layers)
    assert (
        main(["convert", str(tmp_path / "a.safetensors"), str(tmp_path / "ck"), "--to", "orbax"])
        == 0
    )
    assert (
        main(["convert", str(tmp_path / "ck"), str(tmp_path / "b.safetensors"), "--preset", "flax"])
        == 0
    )
    back = load(tmp_path / "b.safetensors")
    assert set(back) == set(layers)
    assert all(back[n].spec == layers[n].spec and back[n].equals(layers[n]) for n in layers)
    # the folder is replaced whole when written again
    assert (
        main(["convert", str(tmp_path / "b.safetensors"), str(tmp_path / "ck"), "--to", "orbax"])
        == 0
    )


def test_a_round_trip_lands_every_layer_where_it_was(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    state = {
        "model.layers.0.norm_1.weight": torch.rand(8),
        "model.layers.0.norm.weight": torch.rand(8),
    }
    torch.save(state, tmp_path / "a.pt")
    assert (
        main(["convert", str(tmp_path / "a.pt"), str(tmp_path / "p.msgpack"), "--preset", "llama"])
        == 0
    )
    assert (
        main(
            [
                "convert",
                str(tmp_path / "p.msgpack"),
                str(tmp_path / "n.safetensors"),
                "--preset",
                "llama",
            ]
        )
        == 0
    )
    assert main(["convert", str(tmp_path / "n.safetensors"), str(tmp_path / "b.pt")]) == 0
    back = torch.load(tmp_path / "b.pt", weights_only=True)
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)
