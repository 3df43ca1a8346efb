"""The fused-op path (``torch.rms_norm``) and the module's plan cache.

Every comparison is bit for bit against something computed another way:
``torch.nn.RMSNorm`` / ``F.rms_norm`` (the upstream), or our graph and blocked
kernels forced with ``use_kernel``. Shapes differ from the benchmark's.
"""

from __future__ import annotations

import copy
import pickle

import pytest
from _sweep import covering, sweep

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_torch import RMSNorm, rms_norm, use_kernel  # noqa: E402

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
IDS = ["float32", "bfloat16", "float16"]
SHAPES = [(3, 100), (2, 5, 48), (1, 2048)]


def _module(preset: str, n: int, param_dtype: torch.dtype) -> RMSNorm:
    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), n).to(param_dtype)
    with torch.no_grad():
        m.weight.copy_(torch.rand(n, generator=torch.Generator().manual_seed(n)) * 2 - 0.5)
    return m


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_torch_preset_equals_torch_nn_rmsnorm(dtype, shape):
    n = shape[-1]
    ours = _module("torch", n, dtype)
    peer = torch.nn.RMSNorm(n).to(dtype)
    with torch.no_grad():
        peer.weight.copy_(ours.weight)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    with torch.no_grad():
        expected = peer(x)
        assert torch.equal(ours(x), expected)
        assert torch.equal(rms_norm(x, ours.spec, ours.weight), expected)
        assert torch.equal(torch.jit.script(ours)(x), expected)


FUSED_ROWS = [
    (p, d, w, g)
    for p in ("torch", "llama", "gemma", "olmo2", "flax", "onnx", "t5")
    for d in DTYPES
    for w in ("float32", "input")
    for g in (False, True)
]
# the default run: every preset in every dtype, every dtype with each weight dtype with
# and without gradients
FUSED_ROWS = sweep(FUSED_ROWS, covering(FUSED_ROWS, [(0, 1), (1, 2, 3)]))


@pytest.mark.parametrize(
    "preset,dtype,param_dtype,grad",
    FUSED_ROWS,
    ids=[
        f"{p}-{IDS[DTYPES.index(d)]}-{w}-{'grad' if g else 'no-grad'}" for p, d, w, g in FUSED_ROWS
    ],
)
def test_fused_equals_graph_and_blocked(preset, dtype, param_dtype, grad):
    """The three CPU paths round alike: the fused op (auto at this size), the graph
    path and the blocked kernel, each forced."""
    m = _module(preset, 96, torch.float32 if param_dtype == "float32" else dtype)
    x = torch.randn(4, 3, 96, generator=torch.Generator().manual_seed(2)).to(dtype)
    with torch.set_grad_enabled(grad):
        auto = m(x)
        with use_kernel("graph"):
            graph = m(x)
        with use_kernel("blocked"):
            blocked = m(x)
    assert auto.dtype == graph.dtype == blocked.dtype
    assert torch.equal(auto, graph)
    assert torch.equal(auto, blocked)


@pytest.mark.parametrize("weight_dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_t5_half_weights_round_alike_on_every_cpu_path(weight_dtype):
    """output_dtype="param": a float32 input rounds to the weights' half dtype before the
    scale; the graph path and the blocked kernel (each forced) and auto agree bit for bit,
    and in that dtype."""
    m = _module("t5", 96, weight_dtype)
    x = torch.randn(4, 3, 96, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        auto = m(x)
        with use_kernel("graph"):
            graph = m(x)
        with use_kernel("blocked"):
            blocked = m(x)
    assert auto.dtype == graph.dtype == blocked.dtype == weight_dtype
    assert torch.equal(auto, graph) and torch.equal(graph, blocked)


def test_wrong_size_on_the_hot_path_names_the_sizes():
    m = RMSNorm(64)
    m(torch.randn(2, 64))  # the plan is cached now
    with pytest.raises(RMSNormError, match=r"normalized_shape=\(64,\) expects .* got \(63,\)"):
        m(torch.randn(2, 63))
    with pytest.raises(RMSNormError, match="rank 0"):
        m(torch.tensor(1.0))


def test_cache_follows_dtype_moves_and_spec_changes():
    m = _module("torch", 32, torch.float32)
    x = torch.randn(5, 32)
    first = m(x)
    m.to(torch.bfloat16)
    y = m(x.bfloat16())
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, torch.nn.functional.rms_norm(x.bfloat16(), [32], m.weight, m.eps))
    m.float()  # the weight went through bfloat16: compare with torch on what it holds now
    assert torch.equal(m(x), torch.nn.functional.rms_norm(x, [32], m.weight, m.eps))
    m.eps = 0.5  # assigning a field replaces the spec, and the cached plans with it
    assert torch.equal(m(x), torch.nn.functional.rms_norm(x, [32], m.weight, 0.5))
    assert not torch.equal(m(x), first)


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))])
def test_used_module_copies_and_pickles(clone):
    m = _module("gemma", 16, torch.float32)
    x = torch.randn(3, 16)
    y = m(x)
    other = clone(m)
    assert torch.equal(other(x), y)
    assert other._calls is not m._calls


def test_hot_path_reads_swapped_and_parametrized_weights():
    """The hot path reads ``_parameters`` directly; functional_call and parametrizations
    put the weight elsewhere, and must still be the weight used."""
    import torch.nn.utils.parametrize as parametrize

    m = _module("torch", 8, torch.float32)
    x = torch.randn(2, 8)
    m(x)  # the plan is cached
    other = torch.full((8,), 3.0)
    y = torch.func.functional_call(m, {"weight": other}, (x,))
    assert torch.equal(y, torch.nn.functional.rms_norm(x, [8], other, m.eps))

    class Double(torch.nn.Module):
        def forward(self, w):
            return w * 2

    parametrize.register_parametrization(m, "weight", Double())
    assert torch.equal(m(x), torch.nn.functional.rms_norm(x, [8], m.weight, m.eps))
