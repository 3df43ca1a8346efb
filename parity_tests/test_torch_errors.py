"""torch entry points refuse bad input with core's messages, eager and scripted.

The rules are core's own functions (``rmsnorm_core.spec._rules``), compiled by
TorchScript into scripted code, so there is no second copy to compare: these
tests check that both ways of running them raise the message the catalogue
expects.
"""

from __future__ import annotations

import pytest
from _error_cases import AXES_ERRORS

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError  # noqa: E402
from rmsnorm_torch import RMSNorm, rms_norm, rms_norm_residual  # noqa: E402
from rmsnorm_torch.nn._functional import norm  # noqa: E402

SPEC = RMSNormSpec(use_bias=True)

# (id, x, weight, bias, exception, message)
BAD_CALLS = [
    (
        "int-input",
        torch.ones(2, 4, dtype=torch.int32),
        None,
        None,
        RMSNormTypeError,
        r"x has dtype int32; accepted dtypes are float16, bfloat16, float32, float64, or "
        r"complex64 and complex128",
    ),
    (
        "bool-input",
        torch.ones(2, 4, dtype=torch.bool),
        None,
        None,
        RMSNormTypeError,
        r"x has dtype bool",
    ),
    (
        "complex-input",
        torch.ones(2, 4, dtype=torch.complex64),
        None,
        None,
        RMSNormTypeError,
        r"x has dtype complex64",
    ),
    (
        "rank0",
        torch.tensor(1.0),
        None,
        None,
        RMSNormError,
        r"an input of rank 0 \(a scalar\) cannot be normalized",
    ),
    (
        "weight-shape",
        torch.ones(2, 4),
        torch.ones(5),
        None,
        RMSNormError,
        r"weight has shape \(5,\); expected \(4,\), the sizes of the normalized axes",
    ),
    (
        "weight-int",
        torch.ones(2, 4),
        torch.ones(4, dtype=torch.int64),
        None,
        RMSNormTypeError,
        r"weight has dtype int64",
    ),
    (
        "bias-shape",
        torch.ones(2, 4),
        None,
        torch.ones(2, 4),
        RMSNormError,
        r"bias has shape \(2, 4\); expected \(4,\)",
    ),
]
IDS = [c[0] for c in BAD_CALLS]


@pytest.mark.parametrize("case_id,x,weight,bias,exc,match", BAD_CALLS, ids=IDS)
def test_function_errors(case_id, x, weight, bias, exc, match):
    with pytest.raises(exc, match=match):
        rms_norm(x, SPEC, weight, bias)


@pytest.mark.parametrize("case_id,x,weight,bias,exc,match", BAD_CALLS, ids=IDS)
def test_scripted_core_errors_carry_the_same_message(case_id, x, weight, bias, exc, match):
    scripted = torch.jit.script(norm)
    with pytest.raises(torch.jit.Error, match=match):
        scripted(x, SPEC.recipe, weight, bias, x.dtype)


@pytest.mark.parametrize("case_id,shape,axes,match", AXES_ERRORS, ids=[c[0] for c in AXES_ERRORS])
def test_axes_errors(case_id, shape, axes, match):
    spec = RMSNormSpec(axes=axes)
    with pytest.raises(RMSNormError, match=match):
        rms_norm(torch.ones(shape), spec)
    with pytest.raises(torch.jit.Error, match=match):
        torch.jit.script(norm)(torch.ones(shape), spec.recipe, None, None, torch.float32)


def test_a_parameter_the_spec_does_not_use_is_refused():
    with pytest.raises(RMSNormError, match=r"bias was given but the spec has use_bias=False"):
        rms_norm(torch.ones(2, 4), RMSNormSpec(), torch.ones(4), torch.zeros(4))


def test_a_spec_of_another_type_is_refused():
    with pytest.raises(RMSNormTypeError, match=r"spec must be an RMSNormSpec, got list"):
        rms_norm(torch.ones(2, 4), [-1])


def test_residual_errors():
    with pytest.raises(
        RMSNormError, match=r"residual has shape \(4, 2\); expected the shape of x, \(2, 4\)"
    ):
        rms_norm_residual(torch.ones(2, 4), torch.ones(4, 2), RMSNormSpec())
    with pytest.raises(RMSNormTypeError, match=r"residual has dtype int64"):
        rms_norm_residual(torch.ones(2, 4), torch.ones(2, 4, dtype=torch.int64), RMSNormSpec())


def test_scripted_module_refuses_wrong_shape():
    scripted = torch.jit.script(RMSNorm(16))
    with pytest.raises(torch.jit.Error, match=r"x has shape \(2, 8\) but normalized_shape=\(16,\)"):
        scripted(torch.ones(2, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_weight_on_another_device():
    with pytest.raises(RMSNormError, match=r"weight is on device cuda:0 but x is on device cpu"):
        RMSNorm(4).cuda()(torch.ones(2, 4))
