"""Where ``torch.nn.RMSNorm`` or ``F.rms_norm`` raises for bad input, ours raises an error
that a user's ``except`` for torch's exception class still catches, and that is also an
``RMSNormError`` whose message names the argument and the value. torch's class is taken
from torch itself, in the same test, never written down here: an integer, bool or float8
input (``NotImplementedError``), tensors on two devices (``RuntimeError``), a float8
weight (``RuntimeError``), an integer parameter dtype (``RuntimeError``), a negative
size (``RuntimeError``), a size that is not an int (``TypeError``)."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

from rmsnorm_core import RMSNormError  # noqa: E402
from rmsnorm_torch import RMSNorm  # noqa: E402
from rmsnorm_torch.functional import rms_norm as dropin  # noqa: E402

F = torch.nn.functional


def _float8_weight(module_class):
    m = module_class(8)
    m.weight = torch.nn.Parameter(torch.ones(8).to(torch.float8_e4m3fn), requires_grad=False)
    return m(torch.ones(2, 8))


def _functional(module_class):
    return dropin if module_class is RMSNorm else F.rms_norm


# (id, call of a module class (ours or torch's), what our message must name)
CASES = [
    ("int-input", lambda M: M(8)(torch.ones(2, 8, dtype=torch.int32)), "x has dtype int32"),
    ("bool-input", lambda M: M(8)(torch.ones(2, 8, dtype=torch.bool)), "x has dtype bool"),
    (
        "float8-input",
        lambda M: M(8)(torch.ones(2, 8).to(torch.float8_e4m3fn)),
        "x has dtype float8_e4m3fn",
    ),
    (
        "int-input-functional",
        lambda M: _functional(M)(torch.ones(2, 8, dtype=torch.int64), [8]),
        "input has dtype torch.int64",
    ),
    (
        "two-devices",
        lambda M: M(8)(torch.ones(2, 8, device="meta")),
        "weight is on device cpu but x is on device meta",
    ),
    (
        "two-devices-functional",
        lambda M: _functional(M)(torch.ones(2, 8, device="meta"), [8], torch.ones(8)),
        "weight is on device cpu but x is on device meta",
    ),
    ("float8-weight", _float8_weight, "weight has dtype float8_e4m3fn"),
    ("int-parameters", lambda M: M(8, dtype=torch.int32), "dtype=torch.int32"),
    (  # torch builds the module and raises at the first call; ours refuses at once
        "float8-parameters",
        lambda M: M(8, dtype=torch.float8_e4m3fn)(torch.ones(2, 8)),
        "dtype=torch.float8_e4m3fn",
    ),
    ("negative-size", lambda M: M(-1), "normalized_shape=-1"),
    ("string-size", lambda M: M("8"), "normalized_shape='8'"),
    ("nested-size", lambda M: M([[8]]), "normalized_shape=[[8]]"),
]


def _raised(call, module_class) -> BaseException:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own warnings on the way to its error
        try:
            call(module_class)
        except Exception as error:
            return error
    raise AssertionError(f"{module_class.__name__}: no error")


@pytest.mark.parametrize("call, names", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_except_for_torchs_error_catches_ours(call, names):
    theirs = type(_raised(call, torch.nn.RMSNorm))
    assert theirs is not RMSNormError and not issubclass(theirs, RMSNormError)
    ours = _raised(call, RMSNorm)
    assert isinstance(ours, theirs), (type(ours).__mro__, theirs)
    assert isinstance(ours, RMSNormError) and names in str(ours)
