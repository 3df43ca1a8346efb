"""Presets: each pins the convention of the implementation it names."""

from __future__ import annotations

import numpy as np
import pytest

import rmsnorm_core
from rmsnorm_core import RMSNormError, RMSNormSpec, RMSNormTypeError
from rmsnorm_core.spec import _presets

REQUIRED = ["torch", "flax", "llama", "gemma", "t5", "paper", "onnx"]

# field values each preset must have, written from the upstream code, not from
# the preset table.
EXPECTED = {
    "torch": dict(
        eps=float(np.finfo(np.float32).eps),
        cast_order="after_scale",
        output_dtype="input",
        scale_offset=0.0,
        eps_placement="inside",
    ),
    "flax": dict(eps=1e-6, cast_order="after_scale", output_dtype="promote", scale_offset=0.0),
    "llama": dict(eps=1e-6, cast_order="before_scale", output_dtype="promote", scale_offset=0.0),
    "gemma": dict(eps=1e-6, cast_order="after_scale", output_dtype="input", scale_offset=1.0),
    "t5": dict(eps=1e-6, cast_order="before_scale", output_dtype="param", scale_offset=0.0),
    "paper": dict(eps=1e-8, eps_placement="outside", scale_offset=0.0),
    "onnx": dict(eps=1e-5, cast_order="before_scale", output_dtype="promote"),
}


def test_every_required_preset_exists():
    assert set(REQUIRED) <= set(RMSNormSpec.presets())


@pytest.mark.parametrize("name", REQUIRED)
def test_preset_fields(name):
    spec = RMSNormSpec.preset(name)
    for field, value in EXPECTED[name].items():
        assert getattr(spec, field) == value, field
    assert spec.axes == (-1,) and spec.compute_dtype == "float32"


@pytest.mark.parametrize("name", REQUIRED)
def test_preset_is_documented_with_source_and_formula(name):
    doc = _presets.__doc__
    assert doc.count(f"- ``{name}``:") == 1, name
    entry = doc.split(f"- ``{name}``:")[1].split("\n- ")[0]
    assert "y = " in entry.lower(), "the entry must give the formula"
    assert any(ch.isdigit() for ch in entry), "the entry must name a version"


def test_preset_overrides_are_validated():
    assert RMSNormSpec.preset("llama", eps=1e-5).eps == 1e-5
    with pytest.raises(RMSNormError, match=r"eps=-1\.0 is not accepted"):
        RMSNormSpec.preset("llama", eps=-1.0)


def test_unknown_preset_lists_the_accepted_ones():
    with pytest.raises(
        RMSNormError,
        match=r"preset='mistral' is not a preset; accepted presets are 'torch', 'flax'",
    ):
        RMSNormSpec.preset("mistral")
    with pytest.raises(RMSNormTypeError, match=r"preset name must be a str, got int 3"):
        rmsnorm_core.preset(3)  # type: ignore[arg-type]


def test_presets_returns_a_fresh_copy():
    table = RMSNormSpec.presets()
    table.pop("torch")
    assert "torch" in RMSNormSpec.presets()
