"""infer_spec's verification: outlier rows, tiny and huge magnitudes, several batch sizes,
every dtype; a spec that fails any of them is not reported, and a parameter the output
does not depend on is refused in one line (issue 30 items 6 and 7)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormError, RMSNormSpec  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402
from rmsnorm_torch import infer_spec  # noqa: E402


def _normalized(x, eps=1e-6):
    h = x.float()
    return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)


def _clamps_at_six(x):
    # the normalized value clamped at +-6: |x| ~ 3 Gaussian rows never reach it
    return _normalized(x).clamp(-6.0, 6.0).to(x.dtype)


def _guards_the_input(x):
    # the input clamped into +-1e4 (a float16 overflow guard) before the norm
    return _normalized(x.float().clamp(-1e4, 1e4)).to(x.dtype)


def _flushes_tiny_inputs(x):
    # an eps=0 norm that zeroes inputs below 1e-10 (a denormal guard)
    h = x.float()
    return _normalized(torch.where(h.abs() < 1e-10, torch.zeros_like(h), h), 0.0).to(x.dtype)


@pytest.mark.parametrize(
    "fn",
    [_clamps_at_six, _guards_the_input, _flushes_tiny_inputs],
    ids=["clamped-output-outlier-rows", "clamped-input-huge-rows", "flushed-input-tiny-rows"],
)
def test_a_norm_that_departs_from_the_spec_off_gaussian_rows_is_not_verified(fn):
    with pytest.raises(RMSNormError, match="no spec reproduces"):
        infer_spec(fn, normalized_shape=64)


def test_the_clamped_norm_differs_from_the_plain_spec_on_an_outlier_row():
    # the premise of the case above, measured independently of the prober
    from rmsnorm_core.reference import rms_norm

    row = torch.zeros(1, 64)
    row[0, 5] = 3.0
    plain = rms_norm(row.numpy(), RMSNormSpec(eps=1e-6, use_scale=False))
    assert abs(float(plain[0, 5]) - float(_clamps_at_six(row)[0, 5])) > 1.0


class _CastOrderBySize(torch.nn.Module):
    """Llama's order (round, then scale) for batches of more than 8 rows; Gemma's below."""

    def __init__(self, n):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))

    def forward(self, x):
        h = _normalized(x)
        if x.numel() // x.shape[-1] > 8:
            return (h.to(x.dtype).float() * self.weight).to(x.dtype)
        return (h * self.weight).to(x.dtype)


def test_a_cast_order_that_switches_with_the_batch_size_is_not_verified():
    module = _CastOrderBySize(64)
    with pytest.raises(RMSNormError, match="no spec reproduces"):
        infer_spec(module)
    # the premise: a one-row bfloat16 call rounds after the scale, a 9-row call before
    spec = RMSNormSpec(eps=1e-6, cast_order="before_scale")
    x = torch.randn(9, 64, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16) * 3
    with torch.no_grad():
        module.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
        ours = __import__("rmsnorm_torch").RMSNorm.from_spec(spec, 64)
        ours.weight.copy_(module.weight)
        assert torch.equal(module(x), ours(x))
        assert not torch.equal(torch.cat([module(r[None]) for r in x]), ours(x))


@pytest.mark.parametrize("rows_over", [0, 8, 64])
def test_a_norm_whose_batch_threshold_is_above_the_probe_rows_is_refused_too(rows_over):
    # the switch at other row counts: each must be seen by some batch the probe runs
    class Switch(_CastOrderBySize):
        def forward(self, x):
            h = _normalized(x)
            if x.numel() // x.shape[-1] > rows_over:
                return (h.to(x.dtype).float() * self.weight).to(x.dtype)
            return (h * self.weight).to(x.dtype)

    if rows_over == 0:  # never switches: plain Llama order, verified
        assert infer_spec(Switch(64)).cast_order == "before_scale"
        return
    with pytest.raises(RMSNormError, match="no spec reproduces"):
        infer_spec(Switch(64))


class _UnusedWeight(torch.nn.Module):
    def __init__(self, n=16):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))

    def forward(self, x):
        return _normalized(x).to(x.dtype)


class _UnusedBias(_UnusedWeight):
    def __init__(self, n=16):
        super().__init__(n)
        self.bias = torch.nn.Parameter(torch.zeros(n))

    def forward(self, x):
        return (_normalized(x) * self.weight).to(x.dtype)


@pytest.mark.parametrize(
    "module,name", [(_UnusedWeight(), "scale"), (_UnusedBias(), "bias")], ids=["weight", "bias"]
)
def test_a_parameter_the_output_does_not_depend_on_is_refused_in_one_line(module, name):
    with pytest.raises(RMSNormError, match=rf"^its {name} parameter is unused: .*") as info:
        infer_spec(module)
    assert "\n" not in str(info.value)


UNUSED = """
import torch


class Unused(torch.nn.Module):
    def __init__(self, n=16):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))

    def forward(self, x):
        h = x.float()
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)
"""


def test_cli_infer_on_an_unused_weight_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "unused_weight_norm.py").write_text(UNUSED)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["infer", "unused_weight_norm:Unused"]) == 2  # a refused input, not a failed check
    err = capsys.readouterr().err
    assert err.startswith("rmsnorm infer: error: its scale parameter is unused: "), err
    assert err.count("\n") == 1 and "NaN" not in err


def test_an_unused_scale_is_refused_in_one_line_in_flax_too():
    pytest.importorskip("jax")
    import jax.numpy as jnp
    from flax import nnx

    from rmsnorm_flax import infer_spec as flax_infer

    class Unused(nnx.Module):
        def __init__(self, n):
            self.scale = nnx.Param(jnp.ones(n))

        def __call__(self, x):
            h = x.astype(jnp.float32)
            return (h / jnp.sqrt(jnp.mean(h * h, -1, keepdims=True) + 1e-6)).astype(x.dtype)

    with pytest.raises(RMSNormError, match=r"^its scale parameter is unused: [^\n]*$"):
        flax_infer(Unused(16))
