"""Every loader compares the whole spec of what it loads with what it loads into.

A layer whose spec differs from its target's (or, for flax's and torch's own
norms, from the spec they compute) is refused, naming the fields, and the
target is left unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
from flax import linen as fnn  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

from rmsnorm_core import FLOAT32_EPS, NeutralLayer, RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_flax import load_into_linen, load_into_nnx, nnx  # noqa: E402
from rmsnorm_torch import RMSNorm, load_into_module  # noqa: E402


def _layer(spec, n=16):
    return NeutralLayer(spec, np.linspace(0.5, 1.5, n).astype(np.float32))


def test_gemma_zeros_into_flax_nnx_is_refused_and_changes_nothing():
    model = fnnx.Dict(norm=fnnx.RMSNorm(16, rngs=fnnx.Rngs(0)))
    layer = NeutralLayer(RMSNormSpec.preset("gemma"), np.zeros(16, np.float32))
    with pytest.raises(RMSNormError, match=r"scale_offset=0\.0 \(model\) but 1\.0 \(checkpoint\)"):
        load_into_nnx(model, {"norm": layer})
    assert np.all(np.asarray(model["norm"].scale[...]) == 1.0)


def test_gemma_into_our_default_nnx_layer_is_refused():
    model = fnnx.Dict(norm=nnx.RMSNorm(16, rngs=fnnx.Rngs(0)))
    with pytest.raises(RMSNormError, match=r"the specs differ: .*scale_offset"):
        load_into_nnx(model, {"norm": _layer(RMSNormSpec.preset("gemma"))})


TORCH_DIFFS = [
    ("eps", {"eps": 0.5}, r"eps=1e-06 \(module\) but 0\.5 \(checkpoint\)"),
    ("axes", {"axes": (1,)}, r"axes=\(-1,\) \(module\) but \(1,\) \(checkpoint\)"),
    (
        "eps_placement",
        {"eps_placement": "outside"},
        r"eps_placement='inside' \(module\) but 'outside'",
    ),
    ("partial", {"partial": 0.25}, r"partial=1\.0 \(module\) but 0\.25"),
    (
        "cast_order",
        {"cast_order": "before_scale"},
        r"cast_order='after_scale' \(module\) but 'before_scale'",
    ),
]


@pytest.mark.parametrize("field,change,match", TORCH_DIFFS, ids=[d[0] for d in TORCH_DIFFS])
def test_torch_nn_rmsnorm_refuses_a_different_spec(field, change, match):
    target = torch.nn.ModuleDict({"n": torch.nn.RMSNorm(16, eps=1e-6)})
    spec = RMSNormSpec.preset("torch", eps=1e-6).replace(**change)
    with pytest.raises(RMSNormError, match=match):
        load_into_module(target, {"n": _layer(spec)})
    assert torch.all(target["n"].weight == 1.0)


def test_torch_nn_rmsnorm_takes_the_spec_it_computes():
    target = torch.nn.ModuleDict({"n": torch.nn.RMSNorm(16)})
    load_into_module(target, {"n": _layer(RMSNormSpec.preset("torch"))})
    assert RMSNormSpec.preset("torch").eps == FLOAT32_EPS
    expected = torch.from_numpy(np.linspace(0.5, 1.5, 16).astype(np.float32))
    assert torch.equal(target["n"].weight.detach(), expected)


def test_our_module_refuses_another_spec_and_a_refused_load_writes_nothing():
    target = torch.nn.ModuleDict({"a": RMSNorm(16), "b": RMSNorm(16)})
    good, bad = _layer(target["a"].spec), _layer(target["b"].spec.replace(eps=0.5))
    with pytest.raises(RMSNormError, match=r"layer 'b' into 'b': the specs differ: eps="):
        load_into_module(target, {"a": good, "b": bad})
    assert torch.all(target["a"].weight == 1.0), "layer 'a' was written before 'b' was refused"


def test_param_dtype_is_part_of_the_spec():
    target = torch.nn.ModuleDict({"n": RMSNorm(16, dtype=torch.bfloat16)})
    with pytest.raises(RMSNormError, match=r"param_dtype='bfloat16' \(module\) but 'float32'"):
        load_into_module(
            target, {"n": _layer(RMSNormSpec(param_dtype="float32", eps=target["n"].spec.eps))}
        )


class _Linen(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        return fnn.RMSNorm(name="norm")(x)


def test_linen_loader_compares_with_flax_norms_spec():
    model, x = _Linen(), jnp.ones((2, 16))
    variables = model.init(jax.random.key(0), x)
    with pytest.raises(
        RMSNormError,
        match=r"layer 'norm' into 'norm': the specs differ: .*scale_offset=0\.0 \(model\)",
    ):
        load_into_linen(model, variables, {"norm": _layer(RMSNormSpec.preset("gemma"))}, x)
    flax_spec = RMSNormSpec.preset("flax")
    loaded = load_into_linen(model, variables, {"norm": _layer(flax_spec)}, x)
    assert np.allclose(np.asarray(loaded["params"]["norm"]["scale"]), np.linspace(0.5, 1.5, 16))
