"""torch entry points refuse bad input with core's messages, eager and scripted."""

from __future__ import annotations

import numpy as np
import pytest
from _cases import AXES_ERRORS

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError, canonical_axes, reference  # noqa: E402
from rmsnorm_torch import RMSNorm, rms_norm, rms_norm_residual  # noqa: E402

BAD_CALLS = [
    (
        "int-input",
        lambda f: f(torch.ones(2, 4, dtype=torch.int32), [-1]),
        RMSNormTypeError,
        r"x has dtype int32; accepted dtypes are float16, bfloat16, float32, float64",
    ),
    (
        "bool-input",
        lambda f: f(torch.ones(2, 4, dtype=torch.bool), [-1]),
        RMSNormTypeError,
        r"x has dtype bool",
    ),
    (
        "complex-input",
        lambda f: f(torch.ones(2, 4, dtype=torch.complex64), [-1]),
        RMSNormTypeError,
        r"x has dtype complex64",
    ),
    (
        "rank0",
        lambda f: f(torch.tensor(1.0), [-1]),
        RMSNormError,
        r"an input of rank 0 \(a scalar\) cannot be normalized",
    ),
    (
        "weight-shape",
        lambda f: f(torch.ones(2, 4), [-1], torch.ones(5)),
        RMSNormError,
        r"weight has shape \(5,\); expected \(4,\), the sizes of the normalized axes",
    ),
    (
        "weight-int",
        lambda f: f(torch.ones(2, 4), [-1], torch.ones(4, dtype=torch.int64)),
        RMSNormTypeError,
        r"weight has dtype int64",
    ),
    (
        "bias-shape",
        lambda f: f(torch.ones(2, 4), [-1], None, torch.ones(2, 4)),
        RMSNormError,
        r"bias has shape \(2, 4\); expected \(4,\)",
    ),
    (
        "eps-zero",
        lambda f: f(torch.ones(2, 4), [-1], None, None, 0.0),
        RMSNormError,
        r"eps=0\.0? is not accepted; eps must be a finite float > 0",
    ),  # TorchScript prints 0.0 as "0."
    (
        "eps-nan",
        lambda f: f(torch.ones(2, 4), [-1], None, None, float("nan")),
        RMSNormError,
        r"eps=nan is not accepted",
    ),
    (
        "placement",
        lambda f: f(torch.ones(2, 4), [-1], None, None, 1e-6, "middle"),
        RMSNormError,
        r"eps_placement='middle' is not accepted; expected one of",
    ),
    (
        "partial-zero",
        lambda f: f(
            torch.ones(2, 4),
            [-1],
            None,
            None,
            1e-6,
            "inside",
            "float32",
            "after_scale",
            "input",
            0.0,
            0.0,
        ),
        RMSNormError,
        r"partial=0\.0? is not accepted",
    ),
]


@pytest.mark.parametrize("case_id,call,exc,match", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_function_errors(case_id, call, exc, match):
    with pytest.raises(exc, match=match):
        call(rms_norm)


@pytest.mark.parametrize("case_id,call,exc,match", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_scripted_function_errors_carry_the_same_message(case_id, call, exc, match):
    scripted = torch.jit.script(rms_norm)
    with pytest.raises(torch.jit.Error, match=match):
        call(scripted)


@pytest.mark.parametrize("case_id,shape,axes,match", AXES_ERRORS, ids=[c[0] for c in AXES_ERRORS])
def test_axes_errors_match_core_word_for_word(case_id, shape, axes, match):
    with pytest.raises(RMSNormError) as core_err:
        canonical_axes(axes, len(shape))
    with pytest.raises(RMSNormError, match=match) as torch_err:
        rms_norm(torch.ones(shape), list(axes))
    assert str(torch_err.value) == str(core_err.value)
    with pytest.raises(torch.jit.Error, match=match):
        torch.jit.script(rms_norm)(torch.ones(shape), list(axes))


def test_param_errors_match_core_word_for_word():
    with pytest.raises(RMSNormError) as core_err:
        reference.rms_norm(np.ones((2, 4)), RMSNormSpec(), scale=np.ones(5))
    with pytest.raises(RMSNormError) as torch_err:
        rms_norm(torch.ones(2, 4), [-1], torch.ones(5))
    assert str(torch_err.value).replace("weight", "scale") == str(core_err.value)


def test_residual_errors():
    with pytest.raises(
        RMSNormError, match=r"residual has shape \(4, 2\); expected the shape of x, \(2, 4\)"
    ):
        rms_norm_residual(torch.ones(2, 4), torch.ones(4, 2), [-1])
    with pytest.raises(RMSNormError, match=r"residual_dtype='float16' is not accepted"):
        rms_norm_residual(torch.ones(2, 4), torch.ones(2, 4), [-1], residual_dtype="float16")


def test_scripted_module_refuses_wrong_shape():
    scripted = torch.jit.script(RMSNorm(16))
    with pytest.raises(torch.jit.Error, match=r"x has shape \(2, 8\) but normalized_shape=\(16,\)"):
        scripted(torch.ones(2, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_weight_on_another_device():
    with pytest.raises(RMSNormError, match=r"weight is on device cuda:0 but x is on device cpu"):
        RMSNorm(4).cuda()(torch.ones(2, 4))
