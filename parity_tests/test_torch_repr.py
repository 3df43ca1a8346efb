"""``repr`` reads as torch.nn.RMSNorm's (``RMSNorm((5,), eps=0.001, elementwise_affine=True)``),
then names only what differs from what torch.nn.RMSNorm computes, so logs and model
summaries read alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmsnorm_core import RMSNormSpec
from rmsnorm_torch import RMSNorm


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((5,), {"eps": 1e-3}),
        ((5,), {}),
        ((4, 6), {"elementwise_affine": False}),
        (3, {"eps": 0.0}),
        (3, {"eps": 1}),
        (3, {"eps": -0.5}),
    ],
    ids=["eps", "eps-none", "two-dims-no-affine", "eps-zero", "eps-int", "eps-negative"],
)
def test_torchs_own_modules_print_alike(args, kwargs):
    assert repr(RMSNorm(args, **kwargs)) == repr(torch.nn.RMSNorm(args, **kwargs))
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.RMSNorm(args, **kwargs))
    ours = torch.nn.Sequential(torch.nn.Linear(4, 4), RMSNorm(args, **kwargs))
    assert str(ours) == str(model)


@pytest.mark.parametrize(
    "spec, extra",
    [
        (RMSNormSpec.preset("llama"), ", cast_order='before_scale', output_dtype='promote'"),
        (RMSNormSpec.preset("gemma"), ", scale_offset=1.0"),
        (RMSNormSpec.preset("torch", axes=(1,)), ", axes=(1,)"),
        (RMSNormSpec.preset("torch", use_bias=True), ", bias=True"),
        (RMSNormSpec.preset("flax", param_dtype="bfloat16"), None),
    ],
    ids=["llama", "gemma", "axes", "bias", "flax"],
)
def test_what_differs_from_torch_follows_torchs_form(spec, extra):
    torch_form = repr(torch.nn.RMSNorm((5,), spec.eps))[:-1]  # without its ")"
    if extra is None:  # every field that differs, in the spec's field order
        base = RMSNormSpec.preset("torch", eps=spec.eps, param_dtype=spec.param_dtype)
        fields = [
            f for f in RMSNormSpec.__dataclass_fields__ if getattr(spec, f) != getattr(base, f)
        ]
        extra = "".join(f", {f}={getattr(spec, f)!r}" for f in fields)
    assert repr(RMSNorm.from_spec(spec, 5)) == torch_form + extra + ")"


@pytest.mark.parametrize(
    "args, kwargs",
    [
        ((5,), {"eps": 1e-3}),
        ((5,), {}),
        ((4, 6), {"elementwise_affine": False}),
        (3, {"eps": True}),
        (3, {"eps": torch.tensor(1e-5)}),
        (np.int64(3), {"elementwise_affine": 0}),
    ],
    ids=["eps", "eps-none", "two-dims-no-affine", "eps-bool", "eps-tensor", "numpy-size-int-flag"],
)
def test_torchs_own_extra_repr_reads_ours_as_torchs(args, kwargs):
    theirs, ours = torch.nn.RMSNorm(args, **kwargs), RMSNorm(args, **kwargs)
    assert torch.nn.RMSNorm.extra_repr(ours) == theirs.extra_repr()
    ours.eps = theirs.eps = 1e-2  # assigned later: read again
    assert torch.nn.RMSNorm.extra_repr(ours) == theirs.extra_repr()
    mixed = torch.nn.Sequential(torch.nn.RMSNorm(args), ours, torch.nn.Linear(2, 2))
    model = torch.nn.Sequential(torch.nn.RMSNorm(args), theirs, torch.nn.Linear(2, 2))
    assert str(mixed) == str(model)


def test_torchs_extra_repr_of_a_spec_module_is_torchs_form_of_its_fields():
    spec = RMSNormSpec.preset("llama")
    ours = RMSNorm.from_spec(spec, 5)
    assert torch.nn.RMSNorm.extra_repr(ours) == torch.nn.RMSNorm(5, spec.eps).extra_repr()
