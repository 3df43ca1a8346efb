"""eps as the originals take it (issue 21 item 2): ``eps=0`` wherever upstream accepts it,
with upstream's result (a row of zeros gives NaN), and ``eps=None`` on the module as
``torch.nn.RMSNorm`` resolves it per call: float64's epsilon for float64 inputs.

Each case compares with the original bit for bit, NaNs at the same places, forward and
gradients; the float64 reference agrees on every row that has a value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmsnorm_core import FLOAT32_EPS, RMSNormSpec, reference
from rmsnorm_torch import RMSNorm, replace_norms, use_kernel
from rmsnorm_torch.functional import rms_norm

DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and torch.equal(torch.isnan(a), torch.isnan(b))
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


def _rows(shape, dtype, seed=3):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)
    x[0] = 0  # a row of zeros: 0 * rsqrt(0) = NaN with eps=0
    return x


def _grads(module, x):
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    y.backward(torch.ones_like(y))
    return y.detach(), x.grad, module.weight.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [24, 3000])  # 3000: the blocked kernel's sizes too
def test_module_eps_zero_is_torchs(dtype, n):
    x = _rows((5, n), dtype)
    theirs, ours = torch.nn.RMSNorm(n, eps=0.0, dtype=dtype), RMSNorm(n, eps=0.0, dtype=dtype)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
        ours.weight.copy_(theirs.weight)
    assert ours.spec.eps == 0.0
    for a, b in zip(_grads(theirs, x), _grads(ours, x), strict=True):
        assert _same(a, b)
    y = ours(x).detach()
    assert torch.isnan(y[0]).all() and not torch.isnan(y[1:]).any()
    for kernel in ("graph", "blocked") if dtype != torch.float64 else ("graph",):
        with torch.no_grad(), use_kernel(kernel):
            assert _same(ours(x), theirs(x)), kernel


def test_functional_and_reference_eps_zero():
    x = _rows((4, 16), torch.float32)
    assert _same(rms_norm(x, [16], eps=0.0), torch.nn.functional.rms_norm(x, [16], eps=0.0))
    ref = reference.rms_norm(x.numpy(), RMSNormSpec.preset("torch", eps=0.0))
    assert np.isnan(ref[0]).all()
    # the rows with a value: the reference and torch within the table's float32 tolerance
    torch.testing.assert_close(torch.from_numpy(ref[1:]), rms_norm(x, [16], eps=0.0)[1:])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_module_eps_none_follows_the_input_dtype_as_torchs(dtype):
    # rows of tiny values: there eps decides the result, so float32's and float64's differ
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = (x * 1e-4).to(dtype)
    theirs, ours = torch.nn.RMSNorm(40, dtype=dtype), RMSNorm(40, dtype=dtype)
    assert ours.spec.eps == FLOAT32_EPS  # one eps in the spec: float32's
    for a, b in zip(_grads(theirs, x), _grads(ours, x), strict=True):
        assert _same(a, b)
    with torch.no_grad():
        assert _same(torch.jit.script(RMSNorm(40, dtype=dtype))(x), theirs(x))
        assert _same(torch.compile(RMSNorm(40, dtype=dtype), backend="eager")(x), theirs(x))


def test_eps_none_differs_in_float64_and_stops_following_once_set():
    x = torch.full((1, 8), 1e-8, dtype=torch.float64)
    ours = RMSNorm(8, dtype=torch.float64)
    # float64's epsilon, not float32's: 1e-8 / sqrt(1e-16 + 2.2e-16) is about 0.56
    assert ours(x)[0, 0].item() == pytest.approx(1e-8 / (1e-16 + 2.220446049250313e-16) ** 0.5)
    ours.eps = FLOAT32_EPS  # set by hand: every dtype's
    assert ours(x)[0, 0].item() == pytest.approx(1e-8 / (1e-16 + FLOAT32_EPS) ** 0.5)
    assert _same(
        RMSNorm(8, eps=FLOAT32_EPS, dtype=torch.float64)(x),
        torch.nn.RMSNorm(8, eps=FLOAT32_EPS, dtype=torch.float64)(x),
    )


def test_replace_norms_keeps_a_float64_model_on_float64_epsilon():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.RMSNorm(8)).double()
    x = torch.randn(3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 1e-6
    before = model(x)
    report = replace_norms(model)
    assert isinstance(model[1], RMSNorm), report
    assert _same(model(x), before)
