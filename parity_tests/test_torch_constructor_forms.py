"""A sweep of the argument forms torch.nn.RMSNorm's constructor accepts (``normalized_shape``
as an int, a list, a tuple, a ``torch.Size``, NumPy ints, an array or integer tensors;
``dtype`` as Python's ``float`` or ``complex``; ``elementwise_affine``
as an int, a NumPy bool or None; ``device`` as a string or a ``torch.device``, ``meta``
included; ``eps`` as a NumPy scalar; all positional): ours builds each, prints and reads
back its arguments as torch's does, holds the same state dict, computes torch's bits
(y, dx, dweight), and scripts wherever torch's scripts, with the same constants.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rmsnorm_core import RMSNormError
from rmsnorm_torch import RMSNorm, layers_from_module, replace_norms

CASES = {
    "shape-int": ((8,), {}),
    "shape-list": (([8],), {}),
    "shape-tuple": (((2, 4),), {}),
    "shape-size": ((torch.Size([2, 4]),), {}),
    "shape-numpy-int": ((np.int64(8),), {}),
    "shape-list-of-numpy-ints": (([np.int64(2), 4],), {}),
    "shape-numpy-array": ((np.array([2, 4]),), {}),
    "shape-list-of-tensors": (([torch.tensor(2), 4],), {}),
    "shape-tensor": ((torch.tensor([2, 4]),), {}),
    "affine-int-1": ((8,), {"elementwise_affine": 1}),
    "affine-int-0": ((8,), {"elementwise_affine": 0}),
    "affine-numpy-bool": ((8,), {"elementwise_affine": np.bool_(False)}),
    "affine-none": ((8,), {"elementwise_affine": None}),
    "device-string": ((8,), {"device": "cpu"}),
    "device-object": ((8,), {"device": torch.device("cpu")}),
    "device-meta": ((8,), {"device": "meta"}),
    "dtype-float64": ((8,), {"dtype": torch.float64}),
    "dtype-bfloat16": ((8,), {"dtype": torch.bfloat16}),
    "dtype-python-float": ((8,), {"dtype": float}),
    "dtype-python-complex": ((8,), {"dtype": complex}),
    "eps-numpy-float64": ((8,), {"eps": np.float64(1e-3)}),
    "eps-numpy-float32": ((8,), {"eps": np.float32(1e-3)}),
    "eps-numpy-int": ((8,), {"eps": np.int64(1)}),
    "eps-tensor": ((8,), {"eps": torch.tensor(1e-5)}),
    "positional": ((8, 1e-3, False, "cpu", torch.float64), {}),
}
FIELDS = ("normalized_shape", "eps", "elementwise_affine")


def _pair(name: str):
    args, kwargs = CASES[name]
    theirs, ours = torch.nn.RMSNorm(*args, **kwargs), RMSNorm(*args, **kwargs)
    if theirs.weight is not None and not theirs.weight.is_meta:
        with torch.no_grad():
            g = torch.Generator().manual_seed(7)
            theirs.weight.copy_(torch.empty(theirs.weight.shape).uniform_(0.5, 1.5, generator=g))
            ours.weight.copy_(theirs.weight)
    return theirs, ours


def _same_value(a, b) -> bool:
    return type(a) is type(b) and (a == b if not isinstance(a, tuple) else _same_tuple(a, b))


def _same_tuple(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_builds_prints_and_reads_back_as_torchs(name):
    theirs, ours = _pair(name)
    assert repr(ours) == repr(theirs)
    assert torch.nn.RMSNorm.extra_repr(ours) == theirs.extra_repr()
    for field in FIELDS:
        assert _same_value(getattr(ours, field), getattr(theirs, field)), field
    mine, torchs = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(torchs)
    for key in torchs:
        a, b = mine[key], torchs[key]
        assert (a.dtype, a.device, a.shape) == (b.dtype, b.device, b.shape), key


@pytest.mark.parametrize("name", [n for n in CASES if n != "device-meta"])
def test_computes_torchs_bits(name):
    theirs, ours = _pair(name)
    sizes = tuple(int(d) for d in theirs.normalized_shape)
    dtype = theirs.weight.dtype if theirs.weight is not None else torch.float32
    x = torch.randn((3, *sizes), generator=torch.Generator().manual_seed(1)).to(dtype)
    results = []
    for module in (theirs, ours):
        xg = x.clone().requires_grad_(True)
        y = module(xg)
        params = [xg] + ([module.weight] if module.weight is not None else [])
        loss = (y.real if y.is_complex() else y).sum()
        results.append([y.detach(), *torch.autograd.grad(loss, params)])
    for a, b in zip(*results, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_meta_device_builds_and_computes_shapes_as_torchs():
    theirs, ours = _pair("device-meta")
    x = torch.empty(3, 8, device="meta")
    a, b = theirs(x), ours(x)
    assert (a.device, a.dtype, a.shape) == (b.device, b.dtype, b.shape)


@pytest.mark.parametrize("name", [n for n in CASES if n != "device-meta"])
def test_scripts_wherever_torchs_scripts_with_its_constants(name):
    theirs, ours = _pair(name)
    scripted = torch.jit.script(ours)  # ours scripts in every case
    sizes = tuple(int(d) for d in theirs.normalized_shape)
    dtype = theirs.weight.dtype if theirs.weight is not None else torch.float32
    x = torch.randn((2, *sizes), generator=torch.Generator().manual_seed(2)).to(dtype)
    assert torch.equal(scripted(x), theirs(x))
    try:
        torchs = torch.jit.script(theirs)
    except TypeError:  # a NumPy value is no TorchScript constant for torch's module
        return
    for field in FIELDS:
        assert _same_value(getattr(scripted, field), getattr(torchs, field)), field


#: torch modules built with each form (meta has no values to compare), replaced without probing;
#: complex parameters have no spec to read (``layers_from_module``)
REPLACED = [n for n in CASES if n not in ("device-meta", "dtype-python-complex")]


@pytest.mark.parametrize("name", REPLACED)
def test_torchs_module_in_each_form_is_read_and_replaced_with_its_bits(name):
    theirs, _ = _pair(name)
    model = torch.nn.Sequential(theirs)
    (layer,) = layers_from_module(model, preset_for_torch="torch").values()
    report = replace_norms(model, infer=False)
    assert list(report) == ["0"] and type(model[0]) is RMSNorm
    assert layer.spec == report["0"] == model[0].spec
    sizes = tuple(int(d) for d in theirs.normalized_shape)
    dtype = theirs.weight.dtype if theirs.weight is not None else torch.float32
    x = torch.randn((3, *sizes), generator=torch.Generator().manual_seed(4)).to(dtype)
    assert torch.equal(model(x), theirs(x))


def test_torchs_module_with_a_bool_eps_stays_saying_why():
    model = torch.nn.Sequential(torch.nn.RMSNorm(8, eps=True))
    with pytest.raises(RMSNormError, match=r"eps=True is not accepted"):
        layers_from_module(model, preset_for_torch="torch")
    assert replace_norms(model, infer=False) == {} and type(model[0]) is torch.nn.RMSNorm
