"""Reading a Hugging Face folder decides from each tensor's owner, and an index that
promises a tensor its shard lacks is an error (issue: nothing is dropped silently)."""

from __future__ import annotations

import json

import numpy as np

from rmsnorm_core import RMSNormSpec, load
from rmsnorm_core.cli._cli import main
from rmsnorm_core.io._safetensors import serialize

RNG = np.random.default_rng(0)


def _folder(tmp_path, shards, config):
    folder = tmp_path / "hf"
    folder.mkdir()
    weight_map = {}
    for name, tensors in shards.items():
        if tensors is not None:
            (folder / name).write_bytes(serialize(tensors, {"format": "pt"}))
            weight_map.update(dict.fromkeys(tensors, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(config))
    return folder, weight_map


def _w(n=16):
    return RNG.standard_normal(n).astype(np.float32)


def test_gemma3_image_text_keeps_the_text_norms_and_names_the_siglip_layernorms(tmp_path, capsys):
    tensors = {
        "language_model.model.layers.0.input_layernorm.weight": _w(),
        "language_model.model.norm.weight": _w(),
        "multi_modal_projector.mm_soft_emb_norm.weight": _w(),
        "vision_tower.vision_model.encoder.layers.0.layer_norm1.weight": _w(),
        "vision_tower.vision_model.encoder.layers.0.layer_norm1.bias": _w(),
        "vision_tower.vision_model.post_layernorm.weight": _w(),
        "vision_tower.vision_model.post_layernorm.bias": _w(),
    }
    config = {
        "model_type": "gemma3",
        "architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": {"model_type": "gemma3_text", "rms_norm_eps": 1e-6},
        "vision_config": {"model_type": "siglip_vision_model", "layer_norm_eps": 1e-6},
    }
    folder, _ = _folder(tmp_path, {"model.safetensors": tensors}, config)
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == 0
    err = capsys.readouterr().err
    layers = load(tmp_path / "n.safetensors")
    assert set(layers) == {
        "language_model.model.layers.0.input_layernorm",
        "language_model.model.norm",
        "multi_modal_projector.mm_soft_emb_norm",
    }
    assert all(la.spec.scale_offset == 1.0 and not la.spec.use_bias for la in layers.values())
    assert "left out 2 norm(s)" in err and "siglip_vision_model" in err
    assert "vision_tower.vision_model.post_layernorm" in err


def test_a_norm_with_a_bias_its_model_type_lacks_is_left_out_and_named(tmp_path, capsys):
    tensors = {
        "model.norm.weight": _w(),
        "model.head_norm.weight": _w(),
        "model.head_norm.bias": _w(),
    }
    folder, _ = _folder(tmp_path, {"model.safetensors": tensors}, {"model_type": "llama"})
    assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == 0
    assert set(load(tmp_path / "n.safetensors")) == {"model.norm"}
    assert "model.head_norm (it has a bias" in capsys.readouterr().err
    # with --preset the caller decides: the biased layer is read (the file decides the bias)
    out = tmp_path / "p.safetensors"
    assert main(["convert", str(folder), str(out), "--preset", "llama"]) == 0
    assert load(out)["model.head_norm"].spec.use_bias


def test_a_tensor_the_index_maps_to_a_shard_that_lacks_it_is_an_error(tmp_path, capsys):
    shards = {"a.safetensors": {"model.norm.weight": _w()}, "b.safetensors": {"other": _w()}}
    folder, weight_map = _folder(tmp_path, shards, {"model_type": "llama"})
    for key in ("model.layers.0.input_layernorm.weight", "model.norm.bias"):
        index = {"weight_map": {**weight_map, key: "b.safetensors"}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        argv = ["convert", str(folder), str(tmp_path / "n.safetensors"), "--preset", "llama"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"index maps {key!r} to shard 'b.safetensors', which does not hold it" in err
        assert "Traceback" not in err
    assert not (tmp_path / "n.safetensors").exists()


def test_a_shard_name_with_nul_or_a_path_is_a_one_line_error(tmp_path, capsys):
    folder, _ = _folder(
        tmp_path, {"a.safetensors": {"model.norm.weight": _w()}}, {"model_type": "llama"}
    )
    for shard in ("a\u0000.safetensors", "../a.safetensors", 7):
        index = {"weight_map": {"model.norm.weight": shard}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
        assert main(["convert", str(folder), str(tmp_path / "n.safetensors")]) == 2
        err = capsys.readouterr().err
        assert "expected a file name inside the checkpoint folder" in err and "Traceback" not in err
    assert RMSNormSpec.preset("llama").use_bias is False
