"""infer_spec: measured (never read off a class name), verified, or refused saying what it is."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import flax.linen as fnn  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx as fnnx  # noqa: E402

from rmsnorm_core import FLOAT32_EPS, RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402
from rmsnorm_flax import infer_spec as flax_infer  # noqa: E402
from rmsnorm_flax import linen, nnx  # noqa: E402
from rmsnorm_torch import RMSNorm, infer_spec  # noqa: E402


@pytest.mark.parametrize("preset", list(RMSNormSpec.presets()))
def test_each_preset_of_ours_is_recovered(preset):
    spec = RMSNormSpec.preset(preset)
    module = RMSNorm.from_spec(spec, 48)
    with torch.no_grad():
        module.weight.uniform_(-0.3, 0.3)
    before = module.weight.detach().clone()
    inferred = infer_spec(module)
    assert inferred.differences(spec) == {} or _same_computation(inferred, spec), inferred
    assert torch.equal(module.weight, before), "the probe's parameter values were not restored"


def _same_computation(a, b):
    # output_dtype "promote" and "input" compute the same when params and input share a dtype
    diff = a.differences(b)
    return set(diff) <= {"output_dtype"} and a.param_dtype == "bfloat16"


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda: torch.nn.RMSNorm(64), RMSNormSpec.preset("torch")),
        (lambda: torch.nn.RMSNorm(64, eps=1e-5), RMSNormSpec.preset("torch", eps=1e-5)),
        (
            lambda: torch.nn.RMSNorm(64, dtype=torch.bfloat16),
            RMSNormSpec(eps=FLOAT32_EPS, param_dtype="bfloat16"),
        ),
        (
            lambda: RMSNorm.from_spec(RMSNormSpec.preset("gemma", axes=(1,), use_bias=True), 12),
            RMSNormSpec.preset("gemma", axes=(1,), use_bias=True),
        ),
        (lambda: RMSNorm.from_spec(RMSNormSpec(partial=0.25), 40), RMSNormSpec(partial=0.25)),
    ],
    ids=["torch-default", "torch-eps", "torch-bf16-weight", "nchw-gemma-bias", "partial"],
)
def test_torch_modules(make, expected):
    assert infer_spec(make()) == expected


def test_flax_linen_nnx_and_ours():
    x = jnp.ones((2, 32))
    module = fnn.RMSNorm()
    assert flax_infer(module, module.init(jax.random.key(0), x)) == RMSNormSpec.preset("flax")
    assert flax_infer(fnnx.RMSNorm(32, rngs=fnnx.Rngs(0))) == RMSNormSpec.preset("flax")
    axis1 = fnn.RMSNorm(reduction_axes=1, feature_axes=1, epsilon=1e-5)
    variables = axis1.init(jax.random.key(0), jnp.ones((2, 12, 3)))
    assert flax_infer(axis1, variables) == RMSNormSpec.preset("flax", axes=(1,), eps=1e-5)
    gemma = RMSNormSpec.preset("gemma")
    ours = linen.RMSNorm(spec=gemma)
    assert flax_infer(ours, ours.init(jax.random.key(0), x)) == gemma
    assert flax_infer(nnx.RMSNorm(32, spec=gemma, rngs=fnnx.Rngs(0))) == gemma


def _hf(module_name, cls, *args, **kwargs):
    transformers = pytest.importorskip("transformers")
    module = __import__(f"transformers.models.{module_name}.modeling_{module_name}", fromlist=[cls])
    del transformers
    return getattr(module, cls)(*args, **kwargs)


HF = [
    ("llama", "LlamaRMSNorm", {"eps": 1e-5}, RMSNormSpec.preset("llama", eps=1e-5)),
    ("mistral", "MistralRMSNorm", {}, RMSNormSpec.preset("llama")),
    ("qwen2", "Qwen2RMSNorm", {}, RMSNormSpec.preset("llama")),
    ("qwen3", "Qwen3RMSNorm", {}, RMSNormSpec.preset("llama")),
    ("gemma", "GemmaRMSNorm", {}, RMSNormSpec.preset("gemma")),
    ("gemma3", "Gemma3RMSNorm", {}, RMSNormSpec.preset("gemma")),
    ("olmo2", "Olmo2RMSNorm", {}, RMSNormSpec.preset("olmo2")),
    ("t5", "T5LayerNorm", {}, RMSNormSpec.preset("t5")),
]


@pytest.mark.parametrize("module_name,cls,kwargs,expected", HF, ids=[h[1] for h in HF])
def test_hugging_face_norms(module_name, cls, kwargs, expected):
    assert infer_spec(_hf(module_name, cls, 64, **kwargs)) == expected


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_t5_with_a_half_weight_is_the_t5_preset_bit_for_bit(dtype):
    # T5LayerNorm rounds to the *weight's* dtype before multiplying: a float32 input
    # comes out in that dtype (output_dtype="param"; refused before it existed)
    t5 = _hf("t5", "T5LayerNorm", 64).to(dtype)
    with torch.no_grad():
        t5.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(3))
    spec = infer_spec(t5)
    assert spec == RMSNormSpec.preset("t5", param_dtype=str(dtype).split(".")[1])
    ours = RMSNorm.from_spec(spec, 64)
    with torch.no_grad():
        ours.weight.copy_(t5.weight)
        for x_dtype in (torch.float32, torch.bfloat16, torch.float16):
            x = (torch.randn(9, 64, generator=torch.Generator().manual_seed(4)) * 3).to(x_dtype)
            assert torch.equal(ours(x), t5(x)) and ours(x).dtype == t5(x).dtype == dtype


def test_half_precision_statistics_are_detected():
    def naive(x):  # everything in the input dtype: float16 squares overflow past 256
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    assert infer_spec(naive, normalized_shape=64).compute_dtype == "input"


def test_a_layernorm_is_named_and_refused():
    with pytest.raises(RMSNormError, match=r"mean-centred: .* this is a LayerNorm"):
        infer_spec(torch.nn.LayerNorm(32))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_a_short_rmsnorm_is_not_taken_for_a_layernorm(n):
    # one element: y = sign(x) * w, unchanged by a shift that keeps the sign (issue 22 item 14)
    spec = infer_spec(torch.nn.RMSNorm(n, eps=1e-5))
    assert spec == RMSNormSpec.preset("torch", eps=1e-5)
    with pytest.raises(RMSNormError, match=r"this is a LayerNorm"):
        infer_spec(torch.nn.LayerNorm(n + 1))


def test_eps_zero_is_measured_as_zero():
    assert infer_spec(torch.nn.RMSNorm(8, eps=0.0)) == RMSNormSpec.preset("torch", eps=0.0)


def test_eps_outside_is_measured_as_what_it_is():
    def paper(x):  # the authors' code: eps added to the rms, computed in float32
        h = x.float()
        return (h / (h.pow(2).mean(-1, keepdim=True).sqrt() + 1e-8)).to(x.dtype)

    assert infer_spec(paper, normalized_shape=32) == RMSNormSpec(
        eps=1e-8, eps_placement="outside", use_scale=False
    )


class _OffsetInBf16(torch.nn.Module):
    """(1 + w) formed in the weight's bfloat16 before the float32 multiply."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(64, dtype=torch.bfloat16))

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        return (h * (1 + self.weight).float()).to(x.dtype)


def test_an_offset_added_in_bfloat16_is_refused_saying_so():
    with pytest.raises(RMSNormError, match=r"no spec reproduces .* formed in that precision"):
        infer_spec(_OffsetInBf16())


def test_cli_prints_the_spec_as_json(capsys):
    assert (
        main(["infer", "torch.nn:RMSNorm", "--init", "normalized_shape=64", "--init", "eps=1e-5"])
        == 0
    )
    assert RMSNormSpec.from_json(capsys.readouterr().out) == RMSNormSpec.preset("torch", eps=1e-5)
    assert main(["infer", "torch.nn:RMSNorm", "--init", "normalized_shape=1"]) == 0
    assert RMSNormSpec.from_json(capsys.readouterr().out) == RMSNormSpec.preset("torch")
    assert main(["infer", "torch.nn:LayerNorm", "--init", "normalized_shape=16"]) == 2
    assert "this is a LayerNorm" in capsys.readouterr().err
    assert main(["infer", "torch.nn.RMSNorm"]) == 2
    assert "is not PACKAGE.MODULE:CLASS" in capsys.readouterr().err


class _MaxTextNorm(fnnx.Module):
    """MaxText's RMSNorm (layers/normalizations.py), dtype = weight_dtype = bfloat16."""

    def __init__(self, n):
        self.scale = fnnx.Param(jnp.ones(n, jnp.bfloat16))

    def __call__(self, x):
        x = jnp.asarray(x, jnp.float32)
        mean2 = jnp.mean(jax.lax.square(x), axis=-1, keepdims=True)
        y = jnp.asarray(x * jax.lax.rsqrt(mean2 + 1e-6), jnp.bfloat16)
        return y * jnp.asarray(self.scale[...], jnp.bfloat16)


def test_maxtext_with_bfloat16_weights_is_the_t5_rule_with_bfloat16_params():
    # for float32 inputs MaxText returns its weights' dtype (bfloat16): output_dtype="param"
    theirs = _MaxTextNorm(32)
    spec = flax_infer(theirs)
    assert spec == RMSNormSpec.preset("t5", param_dtype="bfloat16")
    ours = nnx.RMSNorm(32, spec=spec, rngs=fnnx.Rngs(0))
    ours.scale[...] = jnp.linspace(0.5, 1.5, 32).astype(jnp.bfloat16)
    theirs.scale[...] = ours.scale[...]
    for x_dtype in (jnp.float32, jnp.bfloat16):
        x = (jnp.arange(5 * 32).reshape(5, 32) / 17.0 - 4).astype(x_dtype)
        a, b = ours(x), theirs(x)
        assert a.dtype == b.dtype == jnp.bfloat16 and bool((a == b).all())


def _clamped_torch(x):
    import torch

    ms = x.float().pow(2).mean(-1, keepdim=True).clamp(min=1e-5)
    return (x.float() * torch.rsqrt(ms)).to(x.dtype)


def _clamped_jax(x):
    from jax import lax

    h = x.astype(jnp.float32)
    return (h * lax.rsqrt(jnp.maximum(jnp.mean(h * h, -1, keepdims=True), 1e-5))).astype(x.dtype)


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_a_clamped_statistic_is_refused_not_read_as_eps_inside(framework):
    """x * rsqrt(max(ms, eps)) matches the spec at |x| ~ 3 (it once came back as eps
    9.45e-6 inside, 5% off at std 1e-2); rows where eps matters refuse it."""
    if framework == "torch":
        from rmsnorm_torch import infer_spec as infer

        fn = _clamped_torch
    else:
        from rmsnorm_flax import infer_spec as infer

        fn = _clamped_jax
    with pytest.raises(RMSNormError, match="no spec reproduces"):
        infer(fn, normalized_shape=64)


FUNCTIONS = """
import torch
import jax.numpy as jnp
from jax import lax


def torch_norm(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)


def jax_norm(x):
    h = x.astype(jnp.float32)
    return (h * lax.rsqrt(jnp.mean(h * h, -1, keepdims=True) + 1e-5)).astype(x.dtype)
"""


@pytest.mark.parametrize("name", ["torch_norm", "jax_norm"])
def test_rmsnorm_infer_measures_a_function(name, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_functions.py").write_text(FUNCTIONS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["infer", f"my_functions:{name}", "--shape", "8"]) == 0
    spec = RMSNormSpec.from_json(capsys.readouterr().out)
    assert spec.eps == 1e-5 and not spec.use_scale
    assert main(["infer", f"my_functions:{name}"]) == 2  # no --shape: said so
    assert "a function needs --shape" in capsys.readouterr().err


def _rms(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)


def _jax_rms(x):
    return x * jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + 1e-5)


@pytest.mark.parametrize("shape", [(0,), (-3,), (8, 0), (1 << 21,)], ids=str)
def test_a_block_no_probe_can_be_built_for_is_refused_naming_it(shape):
    with pytest.raises(RMSNormError, match=r"normalized_shape=.* is not accepted; expected whole"):
        infer_spec(_rms, shape)
    with pytest.raises(RMSNormError, match=r"normalized_shape=.* is not accepted; expected whole"):
        flax_infer(_jax_rms, normalized_shape=shape)


@pytest.mark.parametrize("value", ["0", "-3", "2097152"])
def test_cli_shape_outside_a_norms_block_is_a_usage_error(value, capsys):
    assert main(["infer", "torch.nn:RMSNorm", "--shape", value]) == 2
    assert f"--shape=({value},) is not accepted" in capsys.readouterr().err
