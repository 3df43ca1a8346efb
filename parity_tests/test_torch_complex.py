"""Complex inputs and weights as torch computes them: ``rmsnorm_torch.functional.rms_norm``
against ``F.rms_norm`` on torch's OpInfo samples (complex64, complex128: forward, backward,
gradcheck), ``RMSNorm`` against ``torch.nn.RMSNorm`` on sizes on both sides of every kernel
threshold (a complex weight on real and complex inputs too), and the specs without torch's
formula refusing them, saying why.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _sizes import MIDDLE_SIZE
from _sweep import sweep
from torch.testing import make_tensor

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError
from rmsnorm_torch import ResidualRMSNorm, RMSNorm, use_kernel
from rmsnorm_torch import rms_norm as spec_rms_norm
from rmsnorm_torch.functional import rms_norm
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT

COMPLEX = [torch.complex64, torch.complex128]
#: torch's sample_inputs_rms_norm (input shape, normalized_shape, kwargs), then wider rows
OPINFO = [
    ((1, 2, 3), (1, 2, 3), {"eps": 0.5}),
    ((2, 2, 3), (2, 3), {"eps": -0.5}),
    ((1,), (1,), {}),
    ((1, 2), (2,), {}),
    ((0, 1), (1,), {}),
    ((5, 7, 96), (96,), {"eps": 1e-5}),
]
N = 1024
#: rows so that a call is below MIDDLE_SIZE, between it and FUSED_LIMIT, and above
ROWS = [4, MIDDLE_SIZE // N + 8, FUSED_LIMIT // N + 8]


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype and bits, NaNs at the same places (eps=-0.5 makes some)."""
    a, b = a.detach(), b.detach()
    return (
        a.dtype == b.dtype
        and torch.equal(torch.isnan(a), torch.isnan(b))
        and torch.equal(a.nan_to_num(), b.nan_to_num())
    )


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
@pytest.mark.parametrize("case", OPINFO, ids=str)
@pytest.mark.parametrize("with_weight", [True, False], ids=["weight", "no-weight"])
def test_functional_forward_and_backward_are_torchs(case, dtype, with_weight):
    shape, normalized, kwargs = case
    x = make_tensor(shape, device="cpu", dtype=dtype, high=1000, requires_grad=True)
    w = make_tensor(normalized, device="cpu", dtype=dtype, high=1000, requires_grad=with_weight)
    w = w if with_weight else None
    ours, theirs = rms_norm(x, normalized, w, **kwargs), F.rms_norm(x, normalized, w, **kwargs)
    assert _same(ours, theirs)
    if x.numel():
        inputs = [x] if w is None else [x, w]
        g = make_tensor(shape, device="cpu", dtype=dtype)
        ours_g, theirs_g = (
            torch.autograd.grad(ours, inputs, g),
            torch.autograd.grad(theirs, inputs, g),
        )
        grads = zip(ours_g, theirs_g, strict=True)
        assert all(_same(a, b) for a, b in grads)


GRADCHECK = [c for c in OPINFO if c[2].get("eps", 1) > 0]


# the default run: torch's OpInfo samples; the wider (5, 7, 96) row takes the same path at
# a size whose gradcheck costs about 20 s (the other tests here run it at that size)
@pytest.mark.parametrize("case", sweep(GRADCHECK, GRADCHECK[:-1]), ids=str)
def test_functional_complex128_passes_gradcheck(case):
    shape, normalized, kwargs = case
    x = make_tensor(shape, device="cpu", dtype=torch.complex128, requires_grad=True)
    w = make_tensor(normalized, device="cpu", dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: rms_norm(a, normalized, b, **kwargs), (x, w))


def _module_call(module: torch.nn.Module, x: torch.Tensor, dy: torch.Tensor):
    x = x.clone().requires_grad_(True)
    y = module(x)
    return (y.detach(), *torch.autograd.grad(y, [x, module.weight], dy))


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
@pytest.mark.parametrize("rows", ROWS, ids=lambda r: f"numel{r * N}")
def test_module_is_torch_nn_rmsnorms(rows, dtype):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, N, dtype=dtype, generator=g)
    dy = torch.randn(rows, N, dtype=dtype, generator=g)
    pdtype = torch.float32 if dtype == torch.complex64 else torch.float64
    theirs, ours = torch.nn.RMSNorm(N, dtype=pdtype), RMSNorm(N, dtype=pdtype)
    with torch.no_grad():
        theirs.weight.uniform_(0.5, 1.5, generator=g)
        ours.weight.copy_(theirs.weight)
    for name, a, b in zip(
        "y dx dweight".split(), _module_call(theirs, x, dy), _module_call(ours, x, dy), strict=True
    ):
        assert _same(a, b), name
    with torch.no_grad():
        assert _same(torch.jit.script(ours)(x), theirs(x))
        with use_kernel("graph"):  # the graph path computes torch's op order too
            assert _same(ours(x), theirs(x))


def test_eps_none_is_float64s_for_complex128_as_torchs():
    x = torch.full((2, 8), 1e-9, dtype=torch.complex128)  # eps decides these rows
    assert _same(RMSNorm(8, dtype=torch.float64)(x), torch.nn.RMSNorm(8, dtype=torch.float64)(x))
    assert _same(rms_norm(x, [8]), F.rms_norm(x, [8]))


@pytest.mark.parametrize("preset", ["torch", "olmo2"])
def test_specs_with_torchs_formula_take_complex_inputs(preset):
    spec = RMSNormSpec.preset(preset, axes=(-2, -1))
    x = make_tensor((3, 4, 5), device="cpu", dtype=torch.complex64)
    w = make_tensor((4, 5), device="cpu", dtype=torch.float32)
    assert _same(spec_rms_norm(x, spec, w), F.rms_norm(x, [4, 5], w, spec.eps))


@pytest.mark.parametrize(
    "spec, field",
    [
        (RMSNormSpec.preset("llama"), r"cast_order='before_scale'"),
        (RMSNormSpec.preset("flax"), r"output_dtype='promote'"),
        (RMSNormSpec.preset("gemma"), r"scale_offset=1\.0"),
        (RMSNormSpec.preset("t5"), r"cast_order='before_scale'"),
        (RMSNormSpec.preset("paper"), r"eps_placement='outside'"),
        (RMSNormSpec(partial=0.5), r"partial=0\.5"),
        (RMSNormSpec(compute_dtype="float64"), r"compute_dtype='float64'"),
        (RMSNormSpec(use_bias=True), r"use_bias=True"),
    ],
    ids=["llama", "flax", "gemma", "t5", "paper", "partial", "compute-f64", "bias"],
)
def test_specs_without_torchs_formula_refuse_complex_inputs_saying_why(spec, field):
    x = torch.ones(2, 8, dtype=torch.complex64)
    with pytest.raises(RMSNormTypeError, match=r"x has dtype complex64; .*this spec has " + field):
        spec_rms_norm(x, spec)
    with pytest.raises(RMSNormTypeError, match=field):
        RMSNorm.from_spec(spec, 8)(x)


@pytest.mark.parametrize(
    "spec, field",
    [
        (RMSNormSpec.preset("llama"), r"cast_order='before_scale'"),
        (RMSNormSpec.preset("gemma"), r"scale_offset=1\.0"),
        (RMSNormSpec.preset("paper"), r"eps_placement='outside'"),
    ],
    ids=["llama", "gemma", "paper"],
)
def test_specs_without_torchs_formula_refuse_complex_weights_saying_why(spec, field):
    w = torch.ones(8, dtype=torch.complex128)
    with pytest.raises(
        RMSNormTypeError, match=r"weight has dtype complex128; a complex weight .*" + field
    ):
        spec_rms_norm(torch.ones(2, 8), spec, w)


REAL = [torch.float32, torch.bfloat16, torch.float16, torch.float64]


@pytest.mark.parametrize("wdtype", COMPLEX, ids=str)
@pytest.mark.parametrize("dtype", REAL + COMPLEX, ids=str)
@pytest.mark.parametrize("rows", ROWS, ids=lambda r: f"numel{r * N}")
# torch casts the complex product back to a real input's dtype (ours too), and warns
@pytest.mark.filterwarnings("ignore:Casting complex values to real discards:UserWarning")
@pytest.mark.filterwarnings("ignore:Mismatch dtype between input and weight:UserWarning")
def test_module_with_complex_weight_is_torch_nn_rmsnorms(rows, dtype, wdtype):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, N, generator=g).to(dtype)
    dy = torch.randn(rows, N, generator=g).to(dtype)
    theirs, ours = torch.nn.RMSNorm(N, dtype=wdtype), RMSNorm(N, dtype=wdtype)
    assert ours.weight.dtype == theirs.weight.dtype and torch.equal(ours.weight, theirs.weight)
    with torch.no_grad():
        theirs.weight.copy_(torch.randn(N, dtype=wdtype, generator=g))
        ours.weight.copy_(theirs.weight)
    for name, a, b in zip(
        "y dx dweight".split(), _module_call(theirs, x, dy), _module_call(ours, x, dy), strict=True
    ):
        assert _same(a, b), name
    with torch.no_grad():
        if rows == ROWS[0]:  # scripted code takes no size-dependent path
            assert _same(torch.jit.script(ours)(x), theirs(x))
        with use_kernel("graph"):
            assert _same(ours(x), theirs(x))
        assert _same(rms_norm(x, [N], ours.weight), F.rms_norm(x, [N], theirs.weight))


@pytest.mark.parametrize("wdtype", COMPLEX, ids=str)
def test_a_complex_weight_prints_as_torchs_and_has_no_spec(wdtype):
    ours, theirs = RMSNorm(8, dtype=wdtype), torch.nn.RMSNorm(8, dtype=wdtype)
    assert repr(ours) == repr(theirs)
    with pytest.raises(RMSNormError, match=rf"weight has dtype {wdtype} and no spec holds it"):
        _ = ours.spec
    real = torch.float32 if wdtype == torch.complex64 else torch.float64
    ours.weight = torch.nn.Parameter(torch.ones(8, dtype=real))  # a real weight: a spec again
    assert ours.spec.param_dtype == str(real).removeprefix("torch.")


def test_the_blocked_kernel_refuses_complex_calls():
    x = torch.ones(2, 8, dtype=torch.complex64)
    with use_kernel("blocked"), pytest.raises(ValueError, match=r"dtype=complex64"):
        RMSNorm(8)(x)
    with use_kernel("blocked"), pytest.raises(ValueError, match=r"scale=complex64"):
        RMSNorm(8, dtype=torch.complex64)(torch.ones(2, 8))


@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
def test_residual_norm_refuses_complex_parameters_when_built(dtype):
    # RMSNorm builds and computes them (above); the residual sum has no complex rule
    assert RMSNorm(8, dtype=dtype).weight.dtype == dtype
    with pytest.raises(
        RMSNormTypeError,
        match=rf"dtype={dtype} is not accepted by ResidualRMSNorm; its parameters are real: "
        r"float16, bfloat16, float32 or float64",
    ):
        ResidualRMSNorm(8, dtype=dtype)


def test_residual_norm_refuses_pythons_complex_as_torch_reads_it():
    # torch's factories read Python's complex as complex128 (torch.nn.RMSNorm's weight)
    assert RMSNorm(8, dtype=complex).weight.dtype == torch.nn.RMSNorm(8, dtype=complex).weight.dtype
    with pytest.raises(RMSNormTypeError, match=r"dtype=torch.complex128 is not accepted by Resid"):
        ResidualRMSNorm(8, dtype=complex)


@pytest.mark.filterwarnings("ignore:Complex modules are a new feature:UserWarning")
@pytest.mark.parametrize("dtype", COMPLEX, ids=str)
def test_residual_norm_made_complex_later_refuses_its_call(dtype):
    m = ResidualRMSNorm(8, bias=True)
    m.bias = torch.nn.Parameter(torch.zeros(8, dtype=dtype))
    x = torch.randn(2, 8)
    with pytest.raises(RMSNormTypeError, match=rf"bias.dtype={dtype} is not accepted by Resid"):
        m(x, x)
    with pytest.raises(RMSNormTypeError, match=rf"weight.dtype={dtype} is not accepted by Resid"):
        ResidualRMSNorm(8).to(dtype)(x, x)
