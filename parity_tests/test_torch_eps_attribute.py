"""``eps`` as torch.nn.RMSNorm keeps it: ``None`` stays ``None`` (``m.eps = None`` too: the
input dtype's epsilon at call time), an int stays an int, and NaN, inf and negative eps
compute what torch computes, on the module and the functional, at sizes on both sides of
every kernel threshold. A module with such an eps has no spec (none holds it) and says so
when asked for one.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from _sizes import MIDDLE_SIZE

from rmsnorm_core import FLOAT32_EPS, RMSNormError
from rmsnorm_torch import RMSNorm
from rmsnorm_torch.functional import rms_norm
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

N = 1024
#: rows so that a call is below MIDDLE_SIZE, between it and FUSED_LIMIT, and above
ROWS = [4, MIDDLE_SIZE // N + 8, FUSED_LIMIT // N + 8]
DTYPES = [torch.float32, torch.bfloat16, torch.float64]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and torch.equal(torch.isnan(a), torch.isnan(b))
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


def _pair(eps, dtype):
    theirs, ours = torch.nn.RMSNorm(N, eps=eps, dtype=dtype), RMSNorm(N, eps=eps, dtype=dtype)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(1))
        ours.weight.copy_(theirs.weight)
    return theirs, ours


def _call(module: torch.nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    y = module(x)
    return (y.detach(), *torch.autograd.grad(y, [x, module.weight], torch.ones_like(y)))


def test_eps_none_stays_none_and_can_be_assigned():
    theirs, ours = torch.nn.RMSNorm(8), RMSNorm(8)
    assert ours.eps is None and theirs.eps is None
    ours.eps = theirs.eps = 1e-5
    assert ours.eps == theirs.eps == 1e-5
    ours.eps = theirs.eps = None
    assert ours.eps is None and ours.spec.eps == FLOAT32_EPS  # the spec records float32's
    ours.cast_order = "after_scale"  # assigning another field keeps eps's meaning
    assert ours.eps is None
    # float64's epsilon for float64 inputs again, as torch's eps=None: rows eps decides
    x = torch.full((2, 8), 1e-9, dtype=torch.float64)
    ours.double()
    theirs.double()
    assert _same(ours(x), theirs(x))
    assert "eps=None" in repr(ours)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows", ROWS, ids=lambda r: f"numel{r * N}")
@pytest.mark.parametrize("eps", [math.nan, math.inf], ids=str)
def test_module_nan_and_inf_eps_compute_torchs(eps, rows, dtype):
    x = torch.randn(rows, N, generator=torch.Generator().manual_seed(rows)).to(dtype)
    x[0, 0] = math.inf  # inf * rsqrt(inf) is NaN, finite * 0 is 0
    theirs, ours = _pair(eps, dtype)
    assert ours.eps is eps or (math.isnan(ours.eps) and math.isnan(eps))
    for name, a, b in zip("y dx dweight".split(), _call(theirs, x), _call(ours, x), strict=True):
        assert _same(a, b), name
    assert _same(
        rms_norm(x, [N], ours.weight.detach(), eps), F.rms_norm(x, [N], theirs.weight, eps)
    )


@pytest.mark.parametrize("eps", [math.nan, math.inf], ids=str)
def test_a_module_with_nan_or_inf_eps_has_no_spec_until_eps_is_set(eps):
    ours, theirs = RMSNorm(8), torch.nn.RMSNorm(8)
    ours.eps = theirs.eps = eps
    with pytest.raises(RMSNormError, match=rf"eps={eps!r} has no spec \(a spec's eps is a finite"):
        _ = ours.spec
    x = torch.randn(3, 8)
    assert _same(ours(x), theirs(x))
    assert _same(torch.jit.script(ours)(x), theirs(x))
    ours.axes = (-1,)  # another field: eps stays
    assert _same(ours(x), theirs(x))
    ours.eps = theirs.eps = 1e-5
    assert ours.spec.eps == 1e-5 and _same(ours(x), theirs(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows", ROWS, ids=lambda r: f"numel{r * N}")
@pytest.mark.parametrize("eps", [-0.5, -math.inf], ids=str)
def test_module_negative_eps_computes_torchs(eps, rows, dtype):
    x = torch.randn(rows, N, generator=torch.Generator().manual_seed(rows))
    x[::2] *= 0.1  # mean square ~0.01, below 0.5: these rows are NaN, the others finite
    x = x.to(dtype)
    theirs, ours = _pair(eps, dtype)
    assert ours.eps == eps
    for name, a, b in zip("y dx dweight".split(), _call(theirs, x), _call(ours, x), strict=True):
        assert _same(a, b), name
    with pytest.raises(RMSNormError, match=rf"eps={eps!r} has no spec \(a spec's eps is a finite"):
        _ = ours.spec


def test_negative_eps_assigned_computes_torchs_and_a_valid_eps_restores_the_spec():
    ours, theirs = RMSNorm(8), torch.nn.RMSNorm(8)
    ours.eps = theirs.eps = -0.5
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    x[1] *= 0.1
    assert _same(ours(x), theirs(x))
    assert _same(torch.jit.script(ours)(x), theirs(x))
    with pytest.raises(RMSNormError, match=r"eps=-0\.5 has no spec"):
        _ = ours.spec
    ours.eps = theirs.eps = 1e-5
    assert ours.spec.eps == 1e-5 and _same(ours(x), theirs(x))


@pytest.mark.parametrize("eps", [1, 2.0, 0], ids=["int-1", "float-2", "int-0"])
def test_eps_reads_back_as_given(eps):
    theirs, ours = torch.nn.RMSNorm(8, eps=eps), RMSNorm(8, eps=eps)
    assert type(ours.eps) is type(theirs.eps) and ours.eps == theirs.eps
    ours.eps = theirs.eps = 2 * eps
    assert type(ours.eps) is type(theirs.eps) and ours.eps == theirs.eps
    ours.cast_order = "after_scale"  # another field keeps eps as given
    assert type(ours.eps) is type(theirs.eps) and repr(ours) == repr(theirs)
