"""Each preset is bit-identical to its upstream, on the CPU, in float32, bfloat16 and float16.

Shapes are other than the ones the kernels were developed on, and include one
above the blocked kernel's size (the upstream reduces each row as we do).
Parameters are float32 (the presets' ``param_dtype``) and, where the upstream
rounds the same way with half weights, the input's dtype.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _sweep import covering, sweep

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm  # noqa: E402

SHAPES = [(5, 48), (2, 9, 640), (3, 5120), (320, 2048)]  # the last above the blocked size
DTYPES = ["float32", "bfloat16", "float16"]


def _hf(path: str):
    module, name = path.rsplit(":", 1)
    return getattr(pytest.importorskip(module), name)


#: preset -> upstream classes (module:class, built as cls(n, eps=...))
HF = {
    "llama": [
        "transformers.models.llama.modeling_llama:LlamaRMSNorm",
        "transformers.models.mistral.modeling_mistral:MistralRMSNorm",
        "transformers.models.qwen2.modeling_qwen2:Qwen2RMSNorm",
        "transformers.models.qwen3.modeling_qwen3:Qwen3RMSNorm",
    ],
    "gemma": [
        "transformers.models.gemma.modeling_gemma:GemmaRMSNorm",
        "transformers.models.gemma3.modeling_gemma3:Gemma3RMSNorm",
    ],
    "olmo2": ["transformers.models.olmo2.modeling_olmo2:Olmo2RMSNorm"],
    "t5": ["transformers.models.t5.modeling_t5:T5LayerNorm"],
}
CASES = [(preset, path) for preset, paths in HF.items() for path in paths]


def _inputs(shape, dtype, offset):
    g = torch.Generator().manual_seed(sum(shape))
    x = (torch.randn(shape, generator=g) * 3).to(getattr(torch, dtype))
    w = torch.randn(shape[-1], generator=g) * 0.4 + (0.0 if offset else 1.0)
    return x, w


def _pair(upstream, preset: str, n: int, w, param_dtype):
    theirs = upstream(n, eps=1e-6)
    ours = RMSNorm.from_spec(RMSNormSpec.preset(preset, eps=1e-6), n)
    with torch.no_grad():
        theirs.weight.copy_(w)
        ours.weight.copy_(w)
    return theirs.to(param_dtype), ours.to(param_dtype)


HF_ROWS = [(p, path, d, s) for p, path in CASES for d in DTYPES for s in SHAPES]
# the default run: every upstream norm in every dtype, every shape (the blocked size
# included) in every dtype
HF_ROWS = sweep(HF_ROWS, covering(HF_ROWS, [(1, 2), (3, 2)]))


@pytest.mark.parametrize(
    "preset, path, dtype, shape",
    HF_ROWS,
    ids=[f"{p.rsplit(':', 1)[1]}-{d}-{'x'.join(map(str, s))}" for _, p, d, s in HF_ROWS],
)
def test_hugging_face_norms(preset, path, dtype, shape):
    upstream = _hf(path)
    x, w = _inputs(shape, dtype, offset=preset == "gemma")
    # T5 casts to a half weight's dtype, and a float32 input then comes out half:
    # no spec does that (replace_norms' docstring), so T5 is checked with float32 weights
    params = [torch.float32] + ([] if preset == "t5" else [x.dtype])
    for param_dtype in params:
        theirs, ours = _pair(upstream, preset, shape[-1], w, param_dtype)
        with torch.no_grad():
            a, b = ours(x), theirs(x)
        assert a.dtype == b.dtype and torch.equal(a, b), (param_dtype, (a != b).float().mean())


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_nn_rmsnorm_and_f_rms_norm(dtype, shape):
    x, w = _inputs(shape, dtype, offset=False)
    for param_dtype in (torch.float32, x.dtype):
        theirs = torch.nn.RMSNorm(shape[-1]).to(param_dtype)
        ours = RMSNorm.from_spec(RMSNormSpec.preset("torch"), shape[-1]).to(param_dtype)
        with torch.no_grad(), warnings.catch_warnings():
            # torch warns that a float32 weight with a bfloat16 input takes its unfused path
            warnings.filterwarnings("ignore", "Mismatch dtype between input and weight")
            theirs.weight.copy_(w)
            ours.weight.copy_(w)
            a = ours(x)
            assert torch.equal(a, theirs(x)), param_dtype
            assert torch.equal(a, torch.nn.functional.rms_norm(x, [shape[-1]], theirs.weight))


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES)
def test_flax_linen_and_nnx_under_jit(dtype, shape):
    jax = pytest.importorskip("jax")
    import flax.linen as fnn
    import jax.numpy as jnp
    from flax import nnx

    from rmsnorm_flax import linen as ours_linen
    from rmsnorm_flax import nnx as ours_nnx

    rng = np.random.default_rng(sum(shape))
    x = jnp.asarray(rng.standard_normal(shape) * 3, getattr(jnp, dtype))
    scale = jnp.asarray(rng.standard_normal(shape[-1]) * 0.4 + 1, jnp.float32)
    variables = {"params": {"scale": scale}}
    theirs = jax.jit(fnn.RMSNorm().apply)(variables, x)
    ours = jax.jit(ours_linen.RMSNorm().apply)(variables, x)
    assert ours.dtype == theirs.dtype and bool(jnp.all(ours == theirs))
    pair = [nnx.RMSNorm(shape[-1], rngs=nnx.Rngs(0)), ours_nnx.RMSNorm(shape[-1], rngs=nnx.Rngs(0))]
    outs = []
    for layer in pair:
        layer.scale[...] = scale
        outs.append(nnx.jit(lambda m, v: m(v))(layer, x))
    assert outs[1].dtype == outs[0].dtype and bool(jnp.all(outs[1] == outs[0]))
