"""A positive ``eps`` below float32's smallest normal (``1e-39``, ``1e-45``, ``5e-324``),
which torch.nn.RMSNorm computes with and no spec holds: ours computes torch's bits with it,
given when built or assigned later, and ``.spec`` raises, naming it, as for a NaN eps.
"""

from __future__ import annotations

import re

import pytest
import torch

from rmsnorm_core import RMSNormError
from rmsnorm_torch import RMSNorm

TINY = [1e-39, 1e-45, 5e-324]
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
# torch's own unfused path warns where the weight's dtype is not the input's
pytestmark = pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight")


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and torch.equal(torch.isnan(a), torch.isnan(b))
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


def _x(dtype: torch.dtype) -> torch.Tensor:
    """Rows of random values, and a zero row, where eps alone decides the result."""
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    x[1] = 0
    return x.to(dtype)


def _outputs(module: torch.nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    y = module(x)
    return (y.detach(), *torch.autograd.grad(y, [x, module.weight], torch.ones_like(y)))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("how", ["built", "assigned"])
@pytest.mark.parametrize("eps", TINY, ids=repr)
def test_tiny_eps_computes_torchs_bits(eps, how, dtype):
    theirs = torch.nn.RMSNorm(5, eps=eps)
    ours = RMSNorm(5, eps=eps) if how == "built" else RMSNorm(5)
    if how == "assigned":
        ours.eps = eps
    assert ours.eps == theirs.eps and repr(ours) == repr(theirs)
    x = _x(dtype)
    for name, a, b in zip(
        ("y", "dx", "dweight"), _outputs(ours, x), _outputs(theirs, x), strict=True
    ):
        assert _same(a, b), name


@pytest.mark.parametrize("eps", TINY, ids=repr)
def test_tiny_eps_has_no_spec_and_names_the_eps(eps):
    ours = RMSNorm(5, eps=eps)
    match = re.escape(f"eps={eps!r} has no spec (a spec's eps is 0 or at least the compute")
    with pytest.raises(RMSNormError, match=match + ".* underflows"):
        _ = ours.spec
    ours.eps = 1e-5  # one a spec holds: the spec is back
    assert ours.spec.eps == 1e-5
