"""Every ``eps`` torch.nn.RMSNorm's module computes with: a bool (0 or 1), a 0-dim tensor
(read as torch's op reads a double), a NumPy scalar. Ours computes torch's bits with each,
given when built or assigned later, reads it back and prints it as torch's does, and
scripts where torch's scripts (and where it does not). ``.spec`` holds the float torch
computes with, and raises, naming the eps, for a bool, which no spec holds. Forms torch's
op refuses at its first call are refused when given, naming them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from _sizes import MIDDLE_SIZE
from _sweep import covering, sweep

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError
from rmsnorm_torch import RMSNorm
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

N = 1024
#: rows so that a call is below MIDDLE_SIZE, between it and FUSED_LIMIT, and above
ROWS = [4, MIDDLE_SIZE // N + 8, FUSED_LIMIT // N + 8]
DTYPES = [torch.float32, torch.bfloat16, torch.float64]
#: each form, and whether a spec holds it
FORMS = {
    "true": (lambda: True, False),
    "false": (lambda: False, False),
    "tensor-f32": (lambda: torch.tensor(1e-5), True),
    "tensor-f64": (lambda: torch.tensor(1e-3, dtype=torch.float64), True),
    "tensor-bf16": (lambda: torch.tensor(1e-2, dtype=torch.bfloat16), True),
    "tensor-int": (lambda: torch.tensor(1), True),
    "tensor-bool": (lambda: torch.tensor(True), False),
    "tensor-complex-real": (lambda: torch.tensor(1e-4 + 0j), True),
    "numpy-f32": (lambda: np.float32(1e-5), True),
    "numpy-f16": (lambda: np.float16(1e-3), True),
    "numpy-int": (lambda: np.int64(2), True),
    "numpy-bool": (lambda: np.bool_(True), False),
}


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.dtype == b.dtype
        and torch.equal(torch.isnan(a), torch.isnan(b))
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


def _call(module: torch.nn.Module, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    y = module(x)
    return (y.detach(), *torch.autograd.grad(y, [x, module.weight], torch.ones_like(y)))


def _weighted(module: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    with torch.no_grad():
        module.weight.copy_(
            torch.empty(module.weight.shape).uniform_(
                0.5, 1.5, generator=torch.Generator().manual_seed(seed)
            )
        )
    return module


def _check_alike(theirs: torch.nn.Module, ours: RMSNorm) -> None:
    assert repr(ours) == repr(theirs)
    assert type(ours.eps) is type(theirs.eps)
    if isinstance(theirs.eps, torch.Tensor):
        assert ours.eps is theirs.eps  # the tensor given, as torch keeps it
    else:
        assert ours.eps == theirs.eps


FORM_ROWS = [(f, r, d) for f in FORMS for r in ROWS for d in DTYPES]
# the default run: every eps form on every kernel path (row count) and in every dtype,
# every kernel path in every dtype
FORM_ROWS = sweep(FORM_ROWS, covering(FORM_ROWS, [(0, 1), (0, 2), (1, 2)]))


@pytest.mark.parametrize(
    "form,rows,dtype", FORM_ROWS, ids=[f"{f}-numel{r * N}-{d}" for f, r, d in FORM_ROWS]
)
def test_module_computes_torchs_bits_with_each_eps_form(form, rows, dtype):
    eps = FORMS[form][0]()
    theirs = _weighted(torch.nn.RMSNorm(N, eps=eps, dtype=dtype))
    ours = _weighted(RMSNorm(N, eps=eps, dtype=dtype))
    _check_alike(theirs, ours)
    x = torch.randn(rows, N, generator=torch.Generator().manual_seed(rows)).to(dtype)
    x[1] = 0  # eps=False (0): a row of zeros is NaN, as torch's
    for name, a, b in zip("y dx dweight".split(), _call(theirs, x), _call(ours, x), strict=True):
        assert _same(a, b), name


@pytest.mark.parametrize("form", list(FORMS))
def test_eps_assigned_later_computes_torchs_and_a_valid_eps_restores_the_spec(form):
    eps = FORMS[form][0]()
    theirs, ours = _weighted(torch.nn.RMSNorm(8)), _weighted(RMSNorm(8))
    theirs.eps = eps
    ours.eps = eps
    _check_alike(theirs, ours)
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    for name, a, b in zip("y dx dweight".split(), _call(theirs, x), _call(ours, x), strict=True):
        assert _same(a, b), name
    ours.cast_order = "after_scale"  # another field keeps eps as given
    _check_alike(theirs, ours)
    ours.eps = theirs.eps = 1e-5
    assert ours.spec.eps == 1e-5 and _same(ours(x), theirs(x))


@pytest.mark.parametrize("form", list(FORMS))
def test_spec_holds_the_float_torch_computes_with_or_names_the_eps(form):
    make, held = FORMS[form]
    ours = RMSNorm(8, eps=make())
    if held:
        expected = torch.nn.RMSNorm(8, eps=make())  # torch's op reads the eps as a double
        x = torch.randn(3, 8, generator=torch.Generator().manual_seed(2))
        probe = torch.nn.RMSNorm(8, eps=ours.spec.eps)
        assert _same(probe(x), expected(x)) and isinstance(ours.spec.eps, float)
        assert _same(RMSNorm.from_spec(ours.spec, 8)(x), expected(x))
    else:
        name = re.escape(f"eps={make()!r} has no spec (a spec's eps is a finite float >= 0, not")
        with pytest.raises(RMSNormError, match=name + " a bool"):
            _ = ours.spec


@pytest.mark.parametrize("form", list(FORMS))
def test_scripts_where_torch_scripts_and_where_it_does_not(form):
    eps = FORMS[form][0]()
    theirs, ours = _weighted(torch.nn.RMSNorm(8, eps=eps)), _weighted(RMSNorm(8, eps=eps))
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    assert _same(torch.jit.script(ours)(x), theirs(x))
    try:
        scripted_theirs = torch.jit.script(theirs)
    except TypeError:  # torch's module takes no tensor or NumPy float32 eps as a constant
        return
    assert torch.jit.script(ours).eps == scripted_theirs.eps


@pytest.mark.parametrize(
    "eps, match",
    [
        (
            torch.tensor([1e-5]),
            r"eps=tensor\(\[1\.0000e-05\]\) is not accepted \(a tensor of shape \(1,\)\)",
        ),
        (
            torch.tensor(1e-5, requires_grad=True),
            r"is not accepted \(a tensor that requires grad\)",
        ),
        (torch.tensor(1e-5 + 1j), r"is not accepted \(a complex tensor with a nonzero imaginary"),
        (torch.tensor(1e-5, device="meta"), r"is not accepted \(a tensor on the meta device"),
        ("1e-5", r"eps='1e-5' is not accepted; eps must be a real number \(float, int or bool"),
    ],
    ids=["tensor-1d", "tensor-grad", "tensor-complex", "tensor-meta", "string"],
)
def test_eps_torchs_op_refuses_is_refused_when_given(eps, match):
    x = torch.randn(2, 8)
    if not isinstance(eps, str):  # torch's module builds, then its call refuses it
        with pytest.raises((TypeError, RuntimeError)):
            torch.nn.RMSNorm(8, eps=eps)(x)
    with pytest.raises(RMSNormTypeError, match=match):
        RMSNorm(8, eps=eps)
    ours = RMSNorm(8)
    with pytest.raises(RMSNormTypeError, match=match):
        ours.eps = eps
    assert ours.eps is None and ours.spec.eps == RMSNorm(8).spec.eps  # unchanged


@pytest.mark.parametrize("eps", [True, torch.tensor(1e-5)], ids=["bool", "tensor"])
def test_spec_path_keeps_its_named_refusal(eps):
    spec = RMSNormSpec.preset("torch")
    with pytest.raises(RMSNormTypeError, match=r"is not accepted with spec=; eps must then be"):
        RMSNorm(8, eps=eps, spec=spec)
