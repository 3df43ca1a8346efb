"""No state a user can change leaves a cached call stale (``rmsnorm_torch/nn/_calls.py``).

Each case warms a module on one call, changes what the plan depends on (the input's
rank, the weight, the bias, the class's ``forward``), and checks that the next call
does what a fresh module (and ``torch.nn.RMSNorm`` where it applies) does: the same
bits, or the same refusal.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rmsnorm_core import RMSNormError, RMSNormSpec
from rmsnorm_torch import RMSNorm

PRESETS = ["torch", "llama", "gemma", "flax", "t5", "olmo2", "paper"]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
RANKS = [(2, 12, 4, 16), (3, 16), (16,), (5, 2, 16), (2, 3, 4, 5, 16)]


def _module(preset: str, n: int = 16) -> RMSNorm:
    m = RMSNorm.from_spec(RMSNormSpec.preset(preset), n)
    with torch.no_grad():
        m.weight.uniform_(-0.5, 1.5, generator=torch.Generator().manual_seed(0))
    return m


def _fresh_twin(m: RMSNorm) -> RMSNorm:
    """The same module with an empty plan cache (a deep copy starts with none)."""
    twin = copy.deepcopy(m)
    assert twin._calls == {}
    return twin


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).split(".")[1])
@pytest.mark.parametrize("preset", PRESETS)
def test_a_call_at_each_rank_after_the_first_equals_a_fresh_module(preset, dtype):
    m = _module(preset)
    g = torch.Generator().manual_seed(1)
    for shape in RANKS:  # every call after the first finds another rank's plan cached
        x = torch.randn(shape, generator=g).to(dtype)
        expected = _fresh_twin(m)(x)
        assert torch.equal(m(x), expected), (preset, dtype, shape)


def test_a_no_weight_module_refuses_a_block_of_other_sizes_after_a_warm_call():
    m = RMSNorm((4, 16), elementwise_affine=False)
    m(torch.randn(3, 4, 16))
    with pytest.raises(RMSNormError, match=r"normalized_shape|\(4, 16\)"):
        m(torch.randn(16, 16, 16))
    with pytest.raises(RuntimeError):
        nn.RMSNorm((4, 16), elementwise_affine=False)(torch.randn(16, 16, 16))


@pytest.mark.parametrize("rows", [3, 64], ids=["fused", "cpu-op"])
def test_a_weight_of_another_shape_is_refused_after_a_warm_call(rows):
    x = torch.randn(rows, 1024)
    m = RMSNorm(1024)
    m(x)
    m.weight = nn.Parameter(torch.full((1,), 2.0))
    with pytest.raises(RMSNormError, match=r"weight"):
        m(x)
    theirs = nn.RMSNorm(1024)
    theirs.weight = nn.Parameter(torch.full((1,), 2.0))
    with pytest.raises(RuntimeError):
        theirs(x)


# (module, input, parameter name, value assigned after a warm call, what the error names)
ASSIGNED = {
    "llama-bf16-column-weight": (
        lambda: _module("llama").to(torch.bfloat16), lambda: torch.randn(16, 16).bfloat16(),
        "weight", lambda: nn.Parameter(torch.ones(16, 1, dtype=torch.bfloat16)), r"weight",
    ),
    "bias-on-a-module-without-one": (
        lambda: RMSNorm(16), lambda: torch.randn(4, 16),
        "bias", lambda: nn.Parameter(torch.ones(16)),
        r"^bias: this module holds a bias parameter but its spec has use_bias=False; set m.bias",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ASSIGNED))
def test_a_parameter_assigned_after_a_warm_call_is_refused(case):
    module, make_x, name, value, message = ASSIGNED[case]
    m, x = module(), make_x()
    m(x)
    setattr(m, name, value())
    with pytest.raises(RMSNormError, match=message):
        m(x)


def test_weight_data_replaced_in_place_with_another_dtype_is_seen():
    m = RMSNorm(1024)
    x = torch.randn(64, 1024)
    m(x)
    m.weight.data = torch.rand(1024, dtype=torch.float64)
    assert torch.equal(m(x), _fresh_twin(m)(x))


@pytest.mark.parametrize("preset", ["torch", "gemma", "llama"])
@pytest.mark.parametrize("sample", [(2, 5, 16), (7, 16)], ids=["rank3", "rank2"])
def test_a_traced_module_is_right_at_every_rank(preset, sample):
    m = _module(preset)
    traced = torch.jit.trace(m, torch.randn(sample))
    for shape in [(3, 2, 5, 16), (7, 16), (16,), (2, 3, 16)]:
        x = torch.randn(shape)
        assert torch.equal(traced(x), m(x)), shape


@pytest.mark.parametrize("axes, n, sample", [((-1,), 16, (2, 16)), ((-2, -1), (3, 16), (2, 3, 16))])
def test_a_traced_partial_statistic_is_right_at_every_batch_and_rank(axes, n, sample):
    """A partial statistic (the first half of the block) over trailing axes reads no size
    of x, so its trace holds none (it reshaped to the traced sizes: other batches raised)."""
    m = RMSNorm.from_spec(RMSNormSpec.preset("torch").replace(partial=0.5, axes=axes), n)
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(0))
    traced = torch.jit.trace(m, torch.randn(sample))
    block = sample[-len(axes) :]
    for shape in [(3, *block), block, (2, 3, *block), (1, 4, 5, *block)]:
        x = torch.randn(shape)
        assert torch.equal(traced(x), m(x)), shape


def test_patching_the_class_forward_reaches_old_and_new_instances(monkeypatch):
    old = RMSNorm(8)
    old(torch.randn(2, 8))
    monkeypatch.setattr(RMSNorm, "forward", lambda self, x: x * 0 + 7)
    assert torch.equal(old(torch.randn(2, 8)), torch.full((2, 8), 7.0))
    assert torch.equal(RMSNorm(8)(torch.randn(2, 8)), torch.full((2, 8), 7.0))


def test_the_module_keeps_torchs_call_and_forward():
    m = RMSNorm(8)
    assert type(m).__call__ is nn.Module.__call__
    assert "forward" not in vars(m) and "__call__" not in vars(type(m))


def test_a_forced_cpu_kernel_refuses_a_non_contiguous_input_after_a_warm_call():
    from rmsnorm_torch import use_kernel

    m = RMSNorm(8)
    with use_kernel("blocked"):
        m(torch.randn(4, 8))
        with pytest.raises(RMSNormError, match=r"contiguous=False"):
            m(torch.randn(8, 4).t())


def test_a_torch_func_call_leaves_no_plan_for_plain_calls():
    from rmsnorm_torch.kernels._kernel_choice import Kernel

    m = RMSNorm(4096)
    x = torch.randn(64, 4096)  # above FUSED_LIMIT: the CPU operator's size
    torch.func.grad(lambda t: m(t).sum())(x)
    assert m._calls == {}  # the transform's own decision (the graph path) is not kept
    m(x)
    assert [e.kernel for e in m._calls.values()] == [Kernel.CPU_OP]


def test_an_inference_tensor_runs_with_grad_enabled_parameters():
    from rmsnorm_torch import use_kernel

    with torch.inference_mode():
        x = torch.randn(16, 4096)
    m = RMSNorm(4096)
    expected = torch.nn.RMSNorm(4096)(x)
    assert torch.equal(m(x), expected)
    with use_kernel("graph"):
        assert torch.equal(m(x), expected)


OP = "rmsnorm_bridge::rmsnorm"  # the CPU operator, with or without autograd


def _ops_run(fn) -> set:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


def test_a_warm_decode_call_leaves_the_next_calls_kernel_to_decide():
    """``CallCache.direct`` (the decode path's memo) runs the CPU operator only where the
    keyed path would: a contiguous call, with or without autograd, warm or cold, not
    under ``use_kernel("graph")``, not with a weight of another class; a non-contiguous
    call of torch's formula takes ``torch.rms_norm`` (its layout), before and after."""
    from rmsnorm_torch import use_kernel
    from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

    m = RMSNorm(4096)
    warm = torch.randn(2, 4096)
    strided = torch.randn(4096, 2).t()
    for _ in range(2):  # the second round: each memo warm
        with torch.no_grad():
            assert OP in _ops_run(lambda: m(warm))
            assert OP in _ops_run(lambda: m(warm))
        assert OP in _ops_run(lambda: m(warm))
        assert OP in _ops_run(lambda: m(warm))
        assert "aten::rms_norm" in _ops_run(lambda: m(strided))
    m.weight.requires_grad_(False)  # nothing to record: the operator with grad mode on
    assert OP in _ops_run(lambda: m(warm))
    assert OP in _ops_run(lambda: m(warm.requires_grad_()))
    m.weight.requires_grad_(True)
    with torch.no_grad():
        large = torch.randn(FUSED_LIMIT // 4096 + 1, 4096)
        assert OP in _ops_run(lambda: m(large))
        with use_kernel("blocked"):
            assert OP in _ops_run(lambda: m(warm))
            with pytest.raises(RMSNormError, match=r"contiguous=False"):
                m(torch.randn(4096, 2).t())
        with use_kernel("graph"):
            assert "aten::rms_norm" not in _ops_run(lambda: m(warm))
            assert OP not in _ops_run(lambda: m(warm))

    class Tagged(nn.Parameter):
        pass

    m.weight = Tagged(m.weight.detach().clone())
    with torch.no_grad():  # a subclass takes the graph path, whatever it overrides
        assert not {"aten::rms_norm", OP} & _ops_run(lambda: m(warm))
        assert torch.equal(m(warm), _fresh_twin(m)(warm))


def test_a_pickle_whose_plan_cache_is_a_dict_loads_and_runs():
    """Pickles hold no plan cache; one written by an older version held a plain dict,
    and a load starts a cache of its own either way."""
    import pickle

    m, x = _module("llama"), torch.randn(3, 16)
    expected = m(x)
    assert "_calls" not in m.__getstate__()
    assert torch.equal(pickle.loads(pickle.dumps(m))(x), expected)
    older = RMSNorm.__new__(RMSNorm)
    older.__setstate__({**m.__getstate__(), "_calls": {}})
    assert torch.equal(older(x), expected)


@pytest.mark.parametrize("param", [None, "zeros"])
def test_register_parameter_accepts_a_bias_as_torchs_module_does(param):
    value = None if param is None else nn.Parameter(torch.zeros(16))
    theirs, m = nn.RMSNorm(16), RMSNorm(16)
    x = torch.randn(3, 16)
    m(x)
    theirs.register_parameter("bias", value)
    m.register_parameter("bias", value)
    assert m.bias is value and dict(m.named_parameters()).get("bias") is value
    if value is None:
        assert torch.equal(m(x), theirs(x))
    else:  # torch's module ignores it; ours refuses what its spec does not compute
        with pytest.raises(RMSNormError, match=r"^bias: this module holds a bias parameter"):
            m(x)
