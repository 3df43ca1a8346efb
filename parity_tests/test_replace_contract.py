"""``replace_norms`` (torch) keeps the model's contract: meta-device models, affine-free
norms, shared modules, state_dict keys and buffers, hooks, and probes that touch nothing.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch
from torch import nn

from rmsnorm_torch import RMSNorm, infer_spec, replace_norms

X = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 8), nn.RMSNorm(8), nn.RMSNorm(8, elementwise_affine=False))


def test_a_meta_device_model_is_replaced_then_materialized_and_loaded():
    reference = _model()
    with torch.device("meta"):
        model = _model()
    report = replace_norms(model)
    assert sorted(report) == ["1", "2"] and report.skipped == {}
    assert all(isinstance(model[i], RMSNorm) for i in (1, 2))
    assert model[1].weight.is_meta
    model.to_empty(device="cpu")
    model.load_state_dict(reference.state_dict())
    assert torch.equal(model(X), reference(X))


def test_an_affine_free_norm_is_replaced_bit_for_bit():
    model = _model()
    expected = model(X)
    report = replace_norms(model)
    assert "2" in report and report["2"].use_scale is False
    assert isinstance(model[2], RMSNorm) and model[2].weight is None
    assert torch.equal(model(X), expected)


def test_a_shared_norm_stays_shared_and_is_reported_at_every_path():
    norm = nn.RMSNorm(8)
    model = nn.Sequential(norm, nn.Tanh(), norm)
    expected = model(X)
    report = replace_norms(model)
    assert sorted(report) == ["0", "2"]
    assert isinstance(model[0], RMSNorm) and model[0] is model[2]
    assert model[0].weight is norm.weight
    assert torch.equal(model(X), expected)


class ScaleNorm(nn.Module):
    """An RMSNorm whose parameter is called ``scale`` (a common name outside HF)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.scale


class BufferedRMSNorm(nn.RMSNorm):
    """torch's RMSNorm with a persistent buffer its owner saves."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


@pytest.mark.parametrize(
    "norm, word", [(ScaleNorm(8), "'scale'"), (BufferedRMSNorm(8), "persistent buffers")]
)
def test_a_norm_whose_state_dict_ours_would_change_is_left_with_the_reason(norm, word):
    model = nn.Sequential(norm)
    state = copy.deepcopy(model.state_dict())
    report = replace_norms(model)
    assert dict(report) == {} and word in report.skipped["0"]
    assert model[0] is norm
    model.load_state_dict(state)  # the old keys still load


def test_hooks_carry_over_and_never_see_a_probe():
    norm = nn.RMSNorm(8)
    log = []
    handles = [
        norm.register_forward_pre_hook(lambda m, a: log.append(("pre", type(m).__name__))),
        norm.register_forward_hook(lambda m, a, out: log.append(("fwd", out.shape))),
        norm.register_full_backward_hook(lambda m, gi, go: log.append(("bwd", go[0].shape))),
    ]
    model = nn.Sequential(norm)
    replace_norms(model)
    assert log == []  # the probes never reached a hook
    x = X.clone().requires_grad_(True)
    model(x).sum().backward()
    assert log == [("pre", "RMSNorm"), ("fwd", (3, 8)), ("bwd", (3, 8))]
    assert isinstance(model[0], RMSNorm)
    for h in handles:  # handles taken on the old module remove them from the new one
        h.remove()
    model(X)
    assert len(log) == 3


def test_probing_changes_no_module_state():
    model = nn.Sequential(nn.BatchNorm1d(8), BufferedRMSNorm(8)).train()
    before = copy.deepcopy(model.state_dict())
    report = replace_norms(model)
    assert set(report.skipped) == {"0", "1"}
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    norm = BufferedRMSNorm(8)
    infer_spec(norm)
    assert int(norm.calls) == 0  # infer_spec alone probes a copy as well


class NormHead(nn.Module):
    """Baichuan's head: a [vocab, hidden] weight normalized per row, then a matmul."""

    calls = 0

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(vocab, hidden))

    def forward(self, x):
        NormHead.calls += 1
        return nn.functional.linear(x, nn.functional.normalize(self.weight))


def test_a_16_mb_norm_head_is_refused_before_any_probe():
    model = nn.Sequential(NormHead(1024, 4096))  # 16 MiB of float32
    start = time.perf_counter()
    report = replace_norms(model)
    assert time.perf_counter() - start < 20
    assert NormHead.calls == 0
    assert dict(report) == {} and "elements" in report.skipped["0"]
