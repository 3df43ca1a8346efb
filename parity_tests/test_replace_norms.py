"""Our norm in real models in one call: Hugging Face models (torch), nnx graphs, linen code."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from _sweep import sweep

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")
jax = pytest.importorskip("jax")
import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rmsnorm_core import compare  # noqa: E402
from rmsnorm_flax import linen as ours_linen  # noqa: E402
from rmsnorm_flax import nnx as ours_nnx  # noqa: E402
from rmsnorm_torch import COMPILE_OPTIONS, RMSNorm, replace_norms  # noqa: E402

#: Measured: fp32 logits moved by at most 1.7e-6 (T5), 5.4e-7 (Olmo2), 3e-7 (Llama) when
#: every norm is swapped (float32 arithmetic order); the test bounds them at 1e-5.
LOGIT_BOUND = 1e-5
COMMON = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2)  # fmt: skip


def tiny(name):
    torch.manual_seed(0)
    model = {
        "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**COMMON)),
        "gemma": lambda: tf.GemmaForCausalLM(tf.GemmaConfig(**COMMON, head_dim=16)),
        "gemma2": lambda: tf.Gemma2ForCausalLM(tf.Gemma2Config(**COMMON, head_dim=16)),
        "gemma3": lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(**COMMON, head_dim=16)),
        "qwen3": lambda: tf.Qwen3ForCausalLM(tf.Qwen3Config(**COMMON, head_dim=16)),
        "olmo2": lambda: tf.Olmo2ForCausalLM(
            tf.Olmo2Config(**COMMON, eos_token_id=1, pad_token_id=0)
        ),
        "t5": lambda: tf.T5ForConditionalGeneration(
            tf.T5Config(vocab_size=128, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
        ),
    }[name]().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # Gemma's zeros would hide a lost offset
    return model


def _logits(model, ids, name):
    with torch.no_grad():
        kw = {"decoder_input_ids": ids} if name == "t5" else {}
        return model(ids, **kw).logits


ZOO = ["llama", "gemma", "gemma2", "gemma3", "qwen3", "olmo2", "t5"]


@pytest.mark.parametrize("name", ZOO)
def test_every_norm_replaced_bit_for_bit_with_shared_parameters(name):
    model = tiny(name)
    norms = {n: m for n, m in model.named_modules() if "norm" in type(m).__name__.lower() and n}
    originals = {n: copy.deepcopy(m) for n, m in norms.items()}
    params = {n: m.weight for n, m in norms.items()}
    keys, ids = list(model.state_dict()), torch.randint(0, 128, (2, 9))
    before = _logits(model, ids, name)
    replaced = replace_norms(model)
    assert set(replaced) == set(norms), (set(norms) - set(replaced), replaced.skipped)
    for path, theirs in originals.items():
        ours = model.get_submodule(path)
        assert isinstance(ours, RMSNorm) and ours.weight is params[path]
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            x = (torch.randn(16, ours.weight.shape[0]) * 3).to(dtype)
            with torch.no_grad():
                a, b = ours(x), theirs(x)
            assert a.dtype == b.dtype and torch.equal(a, b), (path, dtype)
    assert list(model.state_dict()) == keys
    assert torch.equal(_logits(model, ids, name), before)


# T5LayerNorm rounds to its weight's dtype (output_dtype="param"); with float32 weights
# that equals a promoting norm, and infer_spec tells the two apart on a bfloat16 copy,
# so a model replaced in float32 and cast afterwards stays T5 too.
ZOO_DTYPES = [(n, d) for n in ZOO for d in ("float32", "bfloat16", "float16")]
# the default run: every model in one dtype (rotating, so each dtype is taken) and T5, the
# model whose norm rounds to its weights' dtype, in every dtype
ZOO_DTYPES = sweep(
    ZOO_DTYPES,
    [(n, ("float32", "bfloat16", "float16")[i % 3]) for i, n in enumerate(ZOO)]
    + [("t5", d) for d in ("float32", "bfloat16", "float16")],
)


@pytest.mark.parametrize("name,dtype", ZOO_DTYPES, ids=[f"{n}-{d}" for n, d in ZOO_DTYPES])
def test_logits_and_greedy_generation_unchanged_in_every_dtype(name, dtype):
    dtype = getattr(torch, dtype)
    ids = torch.randint(0, 128, (2, 9), generator=torch.Generator().manual_seed(1))
    orders = ("cast, replace", "replace, cast")
    expected = tiny(name).to(dtype)
    before = _logits(expected, ids, name)
    for order in orders:
        model = tiny(name)
        if order == "cast, replace":
            model = model.to(dtype)
        replaced = replace_norms(model)
        assert replaced and not replaced.skipped, replaced.skipped
        model = model.to(dtype)
        assert torch.equal(_logits(model, ids, name), before), order
        if name != "t5":  # an encoder-decoder: its logits above are the check
            with torch.no_grad():
                kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
                assert torch.equal(model.generate(ids, **kw), expected.generate(ids, **kw))


# torch.export's pytree handling of transformers' outputs warns about its own deprecated
# LeafSpec check (upstream, not ours)
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_a_swapped_model_compiles_and_exports():
    import onnxruntime as ort

    model = tiny("llama")
    replace_norms(model)
    ids = torch.randint(0, 128, (2, 9))
    expected = _logits(model, ids, "llama")
    compiled = torch.compile(model, options=COMPILE_OPTIONS)
    with torch.no_grad():
        assert float((compiled(ids).logits - expected).abs().max()) < LOGIT_BOUND

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):
            return self.m(ids, use_cache=False).logits

    path = f"{pytest.importorskip('tempfile').mkdtemp()}/llama.onnx"
    torch.onnx.export(
        Logits(model).eval(), (ids,), path, dynamo=True, input_names=["ids"], verbose=False
    )
    got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
        None, {"ids": ids.numpy()}
    )[0]
    assert np.abs(got - expected.numpy()).max() < LOGIT_BOUND


def test_layernorms_are_left_alone():
    model = torch.nn.Sequential(torch.nn.LayerNorm(16), torch.nn.RMSNorm(16))
    assert list(replace_norms(model)) == ["1"] and isinstance(model[0], torch.nn.LayerNorm)


class _Linen(fnn.Module):
    @fnn.compact
    def __call__(self, x):
        x = fnn.RMSNorm(name="n1")(x)
        return fnn.RMSNorm(name="n2", epsilon=1e-5)(fnn.Dense(32)(x))


def test_linen_intercept_norms_same_outputs_and_gradients(monkeypatch):
    from rmsnorm_flax.swap import _swap

    calls = []  # our functional's calls (its graph is flax's own: no jaxpr tells them apart)
    real = _swap.rms_norm
    monkeypatch.setattr(_swap, "rms_norm", lambda *a, **k: calls.append(1) or real(*a, **k))
    model, x = _Linen(), jax.random.normal(jax.random.key(0), (4, 32)).astype(jnp.bfloat16)
    variables = model.init(jax.random.key(1), x)
    variables = jax.tree.map(
        lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape, a.dtype), variables
    )

    def loss(v, x):
        return model.apply(v, x).astype(jnp.float32).sum()

    plain = jax.value_and_grad(loss, argnums=(0, 1))(variables, x)
    assert not calls
    with ours_linen.intercept_norms():
        routed = jax.value_and_grad(loss, argnums=(0, 1))(variables, x)
    assert len(calls) == 2, "the calls were not routed through our kernel"
    # a fresh function object: JAX caches what a function traced inside the context
    jax.make_jaxpr(lambda v, x: loss(v, x))(variables, x)
    assert len(calls) == 2
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(routed), strict=True):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(b), np.asarray(a))


def test_nnx_replace_norms_in_place_with_the_same_params():
    class Model(nnx.Module):
        def __init__(self, rngs):
            self.norm = nnx.RMSNorm(32, rngs=rngs)
            self.lin = nnx.Linear(32, 32, rngs=rngs)
            self.layers = nnx.List(
                [nnx.RMSNorm(32, epsilon=1e-5, rngs=rngs), nnx.LayerNorm(32, rngs=rngs)]
            )

        def __call__(self, x):
            return self.layers[1](self.layers[0](self.lin(self.norm(x))))

    model, x = Model(nnx.Rngs(0)), jax.random.normal(jax.random.key(3), (4, 32))
    before, scale = model(x), model.norm.scale
    replaced = ours_nnx.replace_norms(model)
    assert set(replaced) == {"norm", "layers.0"} and isinstance(model.norm, ours_nnx.RMSNorm)
    assert model.norm.scale is scale and isinstance(model.layers[1], nnx.LayerNorm)
    assert compare(np.asarray(model(x)), np.asarray(before), "float32").passed


@pytest.mark.parametrize("eps", [np.float32(1e-5), 1.23456789e-5, torch.tensor(3e-6), None])
def test_torchs_own_norm_is_read_exactly_so_float64_keeps_its_bits(eps):
    # a probe finds eps within the tolerance table; torch's class is read instead, so a
    # float32-valued or unusual eps stays exact where float64 inputs would show it
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.RMSNorm(16, eps=eps)).double()
    x = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    before = model(x)
    report = replace_norms(model)
    assert list(report) == ["1"], report.skipped
    assert type(model[1]) is RMSNorm
    assert torch.equal(model(x), before)
    assert repr(model[1]) == repr(torch.nn.RMSNorm(16, eps=eps))
