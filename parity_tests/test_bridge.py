"""Weights and config between torch, the neutral checkpoint and Flax, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
import flax.linen as fnn  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

from rmsnorm_core import (  # noqa: E402
    RMSNormError,
    RMSNormSpec,
    flax_to_torch,
    load,
    save,
    torch_to_flax,
)
from rmsnorm_flax import (
    layers_from_linen,
    layers_from_nnx,
    linen,
    load_into_linen,
    load_into_nnx,
    nnx,
)  # noqa: E402
from rmsnorm_torch import (  # noqa: E402
    RMSNorm,
    layers_from_module,
    layers_from_state_dict,
    load_into_module,
    state_dict_from_layers,
)

DTYPES = ["float32", "bfloat16", "float16"]


def _specs(dtype):
    return [
        RMSNormSpec.preset("gemma", param_dtype=dtype),
        RMSNormSpec.preset("llama", axes=(1,), use_bias=True, param_dtype=dtype),
    ]


class TorchModel(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        gemma, llama = _specs(dtype)
        self.layers = torch.nn.ModuleList(
            [torch.nn.ModuleDict({"norm": RMSNorm.from_spec(gemma, 16)}) for _ in range(2)]
        )
        self.head = RMSNorm.from_spec(llama, 8)


class LinenBlock(fnn.Module):
    spec: RMSNormSpec

    @fnn.compact
    def __call__(self, x):
        return linen.RMSNorm(spec=self.spec, name="norm")(x)


class LinenModel(fnn.Module):
    dtype: str

    @fnn.compact
    def __call__(self, x, y):
        gemma, llama = _specs(self.dtype)
        for i in range(2):
            x = LinenBlock(gemma, name=f"layers_{i}")(x)
        return x, linen.RMSNorm(spec=llama, name="head")(y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_neutral_flax_neutral_torch_is_bit_identical(tmp_path, dtype):
    source = TorchModel(dtype)
    with torch.no_grad():
        for p in source.parameters():
            p.uniform_(-1, 1)
    save(tmp_path / "a.safetensors", layers_from_module(source))
    model, x, y = LinenModel(dtype), jnp.ones((2, 16)), jnp.ones((2, 8, 3))
    variables = load_into_linen(
        model,
        model.init(jax.random.key(0), x, y),
        load(tmp_path / "a.safetensors"),
        x,
        y,
        name_map=torch_to_flax,
    )
    save(
        tmp_path / "b.safetensors",
        layers_from_linen(model, variables, x, y, name_map=flax_to_torch),
    )
    target = TorchModel(dtype)
    load_into_module(target, load(tmp_path / "b.safetensors"))
    for (k, a), (k2, b) in zip(
        source.state_dict().items(), target.state_dict().items(), strict=True
    ):
        assert (
            k == k2 and a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8))
        ), k
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_offset_layers_stay_offset_everywhere(tmp_path):
    source = TorchModel("float32")
    layers = layers_from_module(source)
    assert layers["layers.0.norm"].spec.scale_offset == 1.0
    assert np.all(layers["layers.0.norm"].scale == 0)  # zero-centered w, not 1 + w
    state = state_dict_from_layers(layers)
    assert torch.all(state["layers.0.norm.weight"] == 0)


def test_nnx_round_trip(tmp_path):
    spec = RMSNormSpec.preset("gemma")

    class Model(fnnx.Module):
        def __init__(self, rngs):
            self.blocks = fnnx.List([nnx.RMSNorm(16, spec=spec, rngs=rngs) for _ in range(2)])

    model = Model(fnnx.Rngs(0))
    model.blocks[1].scale[...] = jnp.arange(16.0)
    layers = layers_from_nnx(model)
    assert sorted(layers) == ["blocks.0", "blocks.1"]
    save(tmp_path / "n.safetensors", layers)
    fresh = Model(fnnx.Rngs(1))
    load_into_nnx(fresh, load(tmp_path / "n.safetensors"))
    assert np.array_equal(np.asarray(fresh.blocks[1].scale[...]), np.arange(16.0))


def test_flax_own_rmsnorm_needs_an_explicit_preset():
    model = fnn.Sequential([fnn.RMSNorm(epsilon=1e-5)])
    x = jnp.ones((2, 8))
    v = model.init(jax.random.key(0), x)
    assert layers_from_linen(model, v, x) == {}
    layers = layers_from_linen(model, v, x, preset_for_flax="flax")
    (layer,) = layers.values()
    assert layer.spec == RMSNormSpec.preset("flax", eps=1e-5)


def test_torch_nn_rmsnorm_and_hugging_face_state_dicts():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.RMSNorm(8, eps=1e-5))
    layers = layers_from_module(model, preset_for_torch="llama")
    assert layers["1"].spec == RMSNormSpec.preset("llama", eps=1e-5)
    hf = {
        "model.layers.0.input_layernorm.weight": torch.ones(8),
        "model.layers.0.mlp.up_proj.weight": torch.ones(8, 8),
        "model.norm.weight": torch.full((8,), 2.0, dtype=torch.bfloat16),
    }
    layers = layers_from_state_dict(hf, RMSNormSpec.preset("llama"))
    assert sorted(layers) == ["model.layers.0.input_layernorm", "model.norm"]
    assert layers["model.norm"].spec.param_dtype == "bfloat16"
    with pytest.raises(RMSNormError, match=r"no key of the state dict matches pattern"):
        layers_from_state_dict({"fc.weight": torch.ones(3)}, RMSNormSpec())


def test_name_maps():
    assert flax_to_torch("layers_0.norm") == "layers.0.norm"
    assert (
        torch_to_flax("model.layers.12.post_attention_layernorm")
        == "model.layers_12.post_attention_layernorm"
    )
    for name in ("layers_0.norm", "blocks_3.attn_norm", "final_norm"):
        assert torch_to_flax(flax_to_torch(name)) == name


def test_loading_into_the_wrong_module_is_refused():
    layers = layers_from_module(TorchModel("float32"))
    with pytest.raises(
        RMSNormError, match=r"layer 'layers.0.norm': the module has no submodule 'layers.0.norm'"
    ):
        load_into_module(torch.nn.Sequential(), layers)
    other = TorchModel("float32")
    other.head = torch.nn.Linear(2, 2)
    with pytest.raises(RMSNormError, match=r"'head' is a Linear, not an RMSNorm"):
        load_into_module(other, {"head": layers["head"]})
    with pytest.raises(
        RMSNormError,
        match=r"layer 'n' into 'n': the specs differ: eps=1.19\d*e-07 \(module\) but 1e-06 "
        r"\(checkpoint\), scale_offset=0.0 \(module\) but 1.0 \(checkpoint\)",
    ):
        load_into_module(
            torch.nn.ModuleDict({"n": torch.nn.RMSNorm(16)}), {"n": layers["layers.0.norm"]}
        )
