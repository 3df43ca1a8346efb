"""The bad-input catalogue, run against every entry point that can receive each input.

Spec fields: ``_cases.SPEC_ERRORS`` (constructor, from_json: test_spec.py; the
torch function, flax modules and the CLI here). Arrays: ``ARRAY_ERRORS`` below,
through the reference, the Flax function and modules, the torch function,
module and scripted module. Files: test_checkpoint.py and test_cli_bridge.py.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from _error_cases import SPEC_ERRORS

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
from flax import nnx as fnnx  # noqa: E402

from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError, reference  # noqa: E402
from rmsnorm_flax import linen, nnx, rms_norm_residual  # noqa: E402
from rmsnorm_flax import rms_norm as flax_rms_norm  # noqa: E402
from rmsnorm_torch import RMSNorm, rms_norm  # noqa: E402
from rmsnorm_torch import rms_norm_residual as torch_residual  # noqa: E402

SPEC = RMSNormSpec()
GOOD_X = np.ones((2, 8), np.float32)
GOOD_SCALE = np.ones(8, np.float32)

# (id, x, scale, residual, exception, message): one bad thing each.
ARRAY_ERRORS = [
    (
        "x-int32",
        np.ones((2, 8), np.int32),
        None,
        None,
        RMSNormTypeError,
        r"x has dtype int32; accepted dtypes are float16, bfloat16, float32, float64",
    ),
    (
        "x-bool",
        np.ones((2, 8), bool),
        None,
        None,
        RMSNormTypeError,
        r"x has dtype bool; accepted dtypes",
    ),
    (
        "x-complex",
        np.ones((2, 8), np.complex64),
        None,
        None,
        RMSNormTypeError,
        r"x has dtype complex64; accepted dtypes",
    ),
    (
        "x-rank0",
        np.float32(1.0),
        None,
        None,
        RMSNormError,
        r"an input of rank 0 \(a scalar\) cannot be normalized",
    ),
    (
        "scale-shape",
        GOOD_X,
        np.ones(5, np.float32),
        None,
        RMSNormError,
        r"(scale|weight) has shape \(5,\); expected \(8,\)",
    ),
    (
        "scale-int",
        GOOD_X,
        np.ones(8, np.int64),
        None,
        RMSNormTypeError,
        r"(scale|weight) has dtype int(64|32); accepted dtypes",
    ),  # jax without x64 holds int32
    (
        "residual-shape",
        GOOD_X,
        GOOD_SCALE,
        np.ones((8, 2), np.float32),
        RMSNormError,
        r"residual has shape \(8, 2\); expected the shape of x, \(2, 8\)",
    ),
    (
        "residual-int",
        GOOD_X,
        GOOD_SCALE,
        np.ones((2, 8), np.int32),
        RMSNormTypeError,
        r"residual has dtype int32",
    ),
]


def _t(a):
    return None if a is None else torch.from_numpy(np.asarray(a).copy())


def _reference(x, scale, res):
    if res is not None:
        return reference.rms_norm_residual(x, res, SPEC, scale)
    return reference.rms_norm(x, SPEC, scale)


def _flax_fn(x, scale, res):
    if res is not None:
        return rms_norm_residual(x, res, SPEC, scale)
    return flax_rms_norm(x, SPEC, scale)


def _flax_linen(x, scale, res):
    m = linen.ResidualRMSNorm(spec=SPEC) if res is not None else linen.RMSNorm(spec=SPEC)
    args = (x, res) if res is not None else (x,)
    if scale is None:
        return m.init(jax.random.key(0), *args)
    if scale.shape != (8,):
        pytest.skip("flax itself refuses a param of another shape than the module creates")
    return m.apply({"params": {"scale": scale}}, *args)


def _flax_nnx(x, scale, res):
    m = (nnx.ResidualRMSNorm if res is not None else nnx.RMSNorm)(8, spec=SPEC, rngs=fnnx.Rngs(0))
    if scale is not None:
        m.scale = fnnx.Param(jax.numpy.asarray(scale))  # a user replacing the parameter
    return m(x, res) if res is not None else m(x)


def _torch_fn(x, scale, res):
    if res is not None:
        return torch_residual(_t(x), _t(res), SPEC, weight=_t(scale))
    return rms_norm(_t(x), SPEC, weight=_t(scale))


def _torch_module(x, scale, res, script=False):
    m = RMSNorm(8)
    if scale is not None:  # a user replacing the parameter
        m.weight = torch.nn.Parameter(_t(scale), requires_grad=False)
    m = torch.jit.script(m) if script else m
    return m(_t(x))


ENTRY_POINTS = {
    "reference": (_reference, RMSNormError),
    "flax-function": (_flax_fn, RMSNormError),
    "flax-linen": (_flax_linen, RMSNormError),
    "flax-nnx": (_flax_nnx, RMSNormError),
    "torch-function": (_torch_fn, RMSNormError),
    "torch-module": (_torch_module, RMSNormError),
    "torch-script": (lambda x, s, r: _torch_module(x, s, r, script=True), torch.jit.Error),
}
NO_RESIDUAL = {"torch-module", "torch-script"}  # RMSNorm takes no residual (ResidualRMSNorm does)
CASES = [
    (e, c)
    for e in ENTRY_POINTS
    for c in ARRAY_ERRORS
    if not (c[3] is not None and e in NO_RESIDUAL)
    # torch's own formula takes complex input as torch.nn.RMSNorm does (test_torch_complex.py)
    if not (c[0] == "x-complex" and e.startswith("torch"))
]


@pytest.mark.parametrize("entry,case", CASES, ids=[f"{e}-{c[0]}" for e, c in CASES])
def test_bad_arrays(entry, case):
    case_id, x, scale, res, exc, match = case
    fn, family = ENTRY_POINTS[entry]
    expected = family if family is torch.jit.Error else exc
    with pytest.raises(expected, match=match):
        fn(x, scale, res)


LINEN_FIELDS = {"eps": "epsilon", "axes": "reduction_axes", "use_scale": "use_scale"}
LINEN_CASES = [
    c
    for c in SPEC_ERRORS
    if set(c[1]) <= set(LINEN_FIELDS) and c[0] not in ("axes-bool", "use_scale-int")
]


def _flax_computes(fields: dict) -> bool:
    """Whether flax's own RMSNorm computes with these fields (a negative, NaN or bool
    epsilon, empty or repeated axes: ours then computes as flax's, test_flax_only_calls)."""
    from flax import linen as flax_linen

    try:
        flax_linen.RMSNorm(**fields).init(jax.random.key(0), GOOD_X)
    except Exception:  # noqa: BLE001 - flax's own refusal, of any type
        return False
    return True


@pytest.mark.parametrize("case_id,kwargs,exc,match", LINEN_CASES, ids=[c[0] for c in LINEN_CASES])
def test_flax_modules_refuse_bad_fields_flax_refuses(case_id, kwargs, exc, match):
    """A field flax refuses is refused by name; one flax computes with, ours computes as
    flax's (same bits, NaN where flax's is NaN): accept every call flax accepts."""
    from flax import linen as flax_linen

    fields = {LINEN_FIELDS[k]: v for k, v in kwargs.items()}
    if not _flax_computes(fields):
        with pytest.raises(RMSNormError):
            linen.RMSNorm(**fields).init(jax.random.key(0), GOOD_X)
        with pytest.raises(RMSNormError):
            nnx.RMSNorm(8, rngs=fnnx.Rngs(0), **fields)
        return
    theirs, _ = flax_linen.RMSNorm(**fields).init_with_output(jax.random.key(0), GOOD_X)
    ours, _ = linen.RMSNorm(**fields).init_with_output(jax.random.key(0), GOOD_X)
    ours_nnx = nnx.RMSNorm(8, rngs=fnnx.Rngs(0), **fields)(GOOD_X)
    for got in (ours, ours_nnx):
        assert got.dtype == theirs.dtype
        assert np.array_equal(np.asarray(got), np.asarray(theirs), equal_nan=True), case_id


CLI_CASES = [
    c
    for c in SPEC_ERRORS
    if not any(isinstance(v, float) and not math.isfinite(v) for v in c[1].values())
]


@pytest.mark.parametrize("case_id,kwargs,exc,match", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_bad_fields(case_id, kwargs, exc, match):
    import json

    sets = [f"--set={k}={json.dumps(v)}" for k, v in kwargs.items()]
    r = subprocess.run(
        [sys.executable, "-m", "rmsnorm_core", "spec", *sets], capture_output=True, text=True
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert case_id.split("-")[0].split("_")[0] in r.stderr
