"""RMSNormSpec: validation, JSON round trip, repr, presets."""

from __future__ import annotations

import dataclasses
import json

import pytest
from _error_cases import SPEC_ERRORS
from hypothesis import given
from hypothesis import strategies as st

import rmsnorm_core
from rmsnorm_core import SCHEMA_VERSION, RMSNormError, RMSNormSpec, RMSNormTypeError

FIELDS = [f.name for f in dataclasses.fields(RMSNormSpec)]


def test_fields_are_the_ones_other_code_relies_on():
    assert FIELDS == [
        "axes",
        "eps",
        "eps_placement",
        "compute_dtype",
        "cast_order",
        "output_dtype",
        "param_dtype",
        "use_scale",
        "scale_offset",
        "use_bias",
        "partial",
        "residual_dtype",
        "scale_multiplies",
    ]


def test_defaults():
    spec = RMSNormSpec()
    assert spec.axes == (-1,)
    assert spec.eps == 1e-6
    assert (spec.eps_placement, spec.compute_dtype, spec.cast_order) == (
        "inside",
        "float32",
        "after_scale",
    )
    assert (spec.output_dtype, spec.param_dtype, spec.residual_dtype) == (
        "input",
        "float32",
        "input",
    )
    assert (spec.use_scale, spec.scale_offset, spec.use_bias, spec.partial) == (
        True,
        0.0,
        False,
        1.0,
    )


def test_spec_is_frozen_and_hashable():
    spec = RMSNormSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.eps = 1.0  # type: ignore[misc]
    assert hash(spec) == hash(RMSNormSpec())


@pytest.mark.parametrize("value,expected", [(-1, (-1,)), ([0, 2], (0, 2)), ((1, -1), (1, -1))])
def test_axes_are_normalized_to_a_tuple(value, expected):
    assert RMSNormSpec(axes=value).axes == expected


def test_int_eps_is_stored_as_float():
    spec = RMSNormSpec(eps=1)
    assert spec.eps == 1.0 and isinstance(spec.eps, float)


@pytest.mark.parametrize("case_id,kwargs,exc,match", SPEC_ERRORS, ids=[c[0] for c in SPEC_ERRORS])
def test_constructor_refuses(case_id, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RMSNormSpec(**kwargs)


@pytest.mark.parametrize("case_id,kwargs,exc,match", SPEC_ERRORS, ids=[c[0] for c in SPEC_ERRORS])
def test_from_json_refuses(case_id, kwargs, exc, match):
    data = RMSNormSpec().to_dict()
    data.update(kwargs)
    text = json.dumps(data)  # NaN and Infinity: Python's json writes and reads them
    with pytest.raises(exc, match=match):
        RMSNormSpec.from_json(text)


def test_errors_are_value_errors():
    assert issubclass(RMSNormError, ValueError)
    assert issubclass(RMSNormTypeError, RMSNormError)
    assert issubclass(RMSNormTypeError, TypeError)


@pytest.mark.parametrize(
    "text,match",
    [
        ("{not json", r"spec JSON is not valid JSON"),
        ("[1, 2]", r"spec data must be a JSON object \(dict\), got list"),
        (
            '{"schema_version": 99}',
            r"schema_version=99 is newer than this library reads \(up to 2\)",
        ),
        (
            '{"schema_version": "1"}',
            r"schema_version='1' is not accepted; expected an int between 1 and 2",
        ),
        ('{"schema_version": 0}', r"schema_version=0 is not accepted"),
        (
            '{"epsilon": 1e-6}',
            r"unknown spec key\(s\) \['epsilon'\]; accepted keys are \['schema_version', 'axes'",
        ),
        ('{"axes": [-1], "mode2": 1, "flag": 0}', r"unknown spec key\(s\) \['flag', 'mode2'\]"),
    ],
    ids=[
        "not-json",
        "not-object",
        "newer-schema",
        "schema-string",
        "schema-zero",
        "unknown-key",
        "unknown-keys-sorted",
    ],
)
def test_from_json_refuses_bad_documents(text, match):
    with pytest.raises(RMSNormError, match=match):
        RMSNormSpec.from_json(text)


def test_from_json_refuses_non_text():
    with pytest.raises(RMSNormTypeError, match=r"spec JSON must be str or bytes, got int"):
        RMSNormSpec.from_json(12)  # type: ignore[arg-type]


def test_json_carries_schema_version():
    assert json.loads(RMSNormSpec().to_json())["schema_version"] == SCHEMA_VERSION == 2


def test_missing_fields_take_defaults():
    assert RMSNormSpec.from_json('{"schema_version": 1, "eps": 1e-5}') == RMSNormSpec(eps=1e-5)


def test_replace_validates_and_names_unknown_fields():
    assert RMSNormSpec().replace(eps=1e-5).eps == 1e-5
    with pytest.raises(RMSNormError, match=r"eps=-1\.0 is not accepted"):
        RMSNormSpec().replace(eps=-1.0)
    with pytest.raises(RMSNormTypeError, match=r"replace\(\) got unknown field\(s\) \['epsilon'\]"):
        RMSNormSpec().replace(epsilon=1e-5)


specs = st.builds(
    RMSNormSpec,
    axes=st.lists(st.integers(-6, 5), min_size=1, max_size=4, unique=True).map(tuple),
    eps=st.floats(min_value=1e-30, max_value=1.0, allow_nan=False, exclude_min=False),
    eps_placement=st.sampled_from(["inside", "outside"]),
    compute_dtype=st.sampled_from(["float32", "float64", "input"]),
    cast_order=st.sampled_from(["after_scale", "before_scale"]),
    output_dtype=st.sampled_from(["input", "promote", "param"]),
    param_dtype=st.sampled_from(list(rmsnorm_core.FLOAT_DTYPES)),
    use_scale=st.just(True),
    scale_offset=st.sampled_from([0.0, 1.0, -0.5]),
    use_bias=st.booleans(),
    partial=st.floats(min_value=1e-6, max_value=1.0, allow_nan=False),
    residual_dtype=st.sampled_from(["input", "float32"]),
)


@given(specs)
def test_json_round_trip(spec):
    text = spec.to_json()
    back = RMSNormSpec.from_json(text)
    assert back == spec
    assert back.to_json() == text


@given(specs)
def test_repr_evaluates_back(spec):
    assert eval(repr(spec), {"RMSNormSpec": RMSNormSpec}) == spec


@given(specs)
def test_dict_round_trip_preserves_types(spec):
    back = RMSNormSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec
    assert isinstance(back.axes, tuple) and isinstance(back.eps, float)


def test_version_1_data_reads_as_the_normalized_scale_order():
    old = {"schema_version": 1, "eps": 1e-6, "output_dtype": "promote"}
    assert RMSNormSpec.from_dict(old).scale_multiplies == "normalized"
    assert RMSNormSpec.preset("flax").scale_multiplies == "inverse"
    assert RMSNormSpec.from_json(RMSNormSpec.preset("flax").to_json()) == RMSNormSpec.preset("flax")


def test_the_inverse_scale_order_needs_after_scale():
    with pytest.raises(RMSNormError, match="scale_multiplies='inverse' needs"):
        RMSNormSpec(scale_multiplies="inverse", cast_order="before_scale")
    assert RMSNormSpec(scale_multiplies="inverse", eps_placement="outside").recipe.scale_inverse
