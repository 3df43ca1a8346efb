"""Core's helpers: canonical axes, parameter shape, partial count, dtype plan."""

from __future__ import annotations

import pytest
from _error_cases import AXES_ERRORS

from rmsnorm_core import (
    RMSNormError,
    RMSNormSpec,
    RMSNormTypeError,
    canonical_axes,
    check_normalized_shape,
    dtype_plan,
    param_shape,
    partial_count,
    promote,
)


@pytest.mark.parametrize(
    "axes,rank,expected",
    [((-1,), 3, (2,)), ((1,), 4, (1,)), ((-1, 0), 3, (0, 2)), ((3, 1), 4, (1, 3)), ((0,), 1, (0,))],
    ids=["last-rank3", "nchw-c", "first-and-last", "unsorted", "rank1"],
)
def test_canonical_axes(axes, rank, expected):
    assert canonical_axes(axes, rank) == expected


@pytest.mark.parametrize("case_id,shape,axes,match", AXES_ERRORS, ids=[c[0] for c in AXES_ERRORS])
def test_canonical_axes_errors(case_id, shape, axes, match):
    with pytest.raises(RMSNormError, match=match):
        canonical_axes(axes, len(shape))


def test_rank_zero_is_refused():
    with pytest.raises(RMSNormError, match=r"an input of rank 0 \(a scalar\) cannot be normalized"):
        canonical_axes((-1,), 0)


@pytest.mark.parametrize(
    "axes,shape,expected",
    [
        ((-1,), (2, 3, 8), (8,)),
        ((1,), (2, 5, 4, 4), (5,)),
        ((-2, -1), (2, 3, 4), (3, 4)),
        ((3, 1), (2, 3, 4, 5), (3, 5)),
    ],
    ids=["trailing", "nchw-c", "two-trailing", "non-adjacent"],
)
def test_param_shape(axes, shape, expected):
    assert param_shape(RMSNormSpec(axes=axes), shape) == expected


@pytest.mark.parametrize(
    "partial,n,expected",
    [
        (1.0, 10, 10),
        (0.5, 10, 5),
        (0.25, 10, 2),
        (0.01, 10, 1),
        (0.5, 1, 1),
        (0.5, 0, 0),
        (0.999, 4, 3),
    ],
    ids=["full", "half", "floor", "at-least-one", "single", "empty", "floor-not-round"],
)
def test_partial_count(partial, n, expected):
    assert partial_count(partial, n) == expected


@pytest.mark.parametrize(
    "spec_kwargs,inp,par,expected",
    [
        ({}, "bfloat16", None, ("float32", "float32", None, "bfloat16", "bfloat16")),
        (
            {"output_dtype": "promote"},
            "bfloat16",
            None,
            ("float32", "float32", None, "float32", "bfloat16"),
        ),
        (
            {"output_dtype": "promote"},
            "bfloat16",
            "bfloat16",
            ("float32", "float32", None, "bfloat16", "bfloat16"),
        ),
        (
            {"output_dtype": "promote"},
            "float16",
            "bfloat16",
            ("float32", "float32", None, "float32", "float16"),
        ),
        (
            {"output_dtype": "promote", "use_scale": False},
            "bfloat16",
            None,
            ("float32", "float32", None, "bfloat16", "bfloat16"),
        ),
        (
            {"cast_order": "before_scale"},
            "float16",
            None,
            ("float32", "float32", "float16", "float16", "float16"),
        ),
        ({}, "float64", None, ("float64", "float64", None, "float64", "float64")),
        (
            {"compute_dtype": "float64"},
            "float16",
            None,
            ("float64", "float64", None, "float16", "float16"),
        ),
        (
            {"compute_dtype": "input"},
            "float16",
            None,
            ("float16", "float32", None, "float16", "float16"),
        ),
        (
            {"residual_dtype": "float32"},
            "bfloat16",
            None,
            ("float32", "float32", None, "bfloat16", "float32"),
        ),
    ],
    ids=[
        "default-bf16",
        "promote-bf16-f32",
        "promote-bf16-bf16",
        "promote-f16-bf16",
        "promote-no-params",
        "before-scale-f16",
        "f64-input",
        "compute-f64",
        "compute-input",
        "residual-f32",
    ],
)
def test_dtype_plan(spec_kwargs, inp, par, expected):
    plan = dtype_plan(RMSNormSpec(**spec_kwargs), inp, par)
    assert (plan.compute, plan.scale, plan.intermediate, plan.output, plan.residual) == expected
    assert plan.input == inp


@pytest.mark.parametrize("dtype", ["int32", "bool", "complex64", "uint8"])
def test_dtype_plan_refuses_non_float_inputs(dtype):
    with pytest.raises(
        RMSNormTypeError,
        match=rf"x has dtype {dtype}; accepted dtypes are float16, bfloat16, float32, float64",
    ):
        dtype_plan(RMSNormSpec(), dtype)


def test_promote_is_symmetric_and_matches_jax_rules():
    assert promote("float16", "bfloat16") == promote("bfloat16", "float16") == "float32"
    assert promote("bfloat16", "float32") == "float32"
    assert promote("float32", "float64") == "float64"
    assert promote("float16", "float16") == "float16"


@pytest.mark.parametrize(
    "value,expected", [(8, (8,)), ([2, 3], (2, 3)), ((0,), (0,))], ids=["int", "list", "zero"]
)
def test_check_normalized_shape(value, expected):
    assert check_normalized_shape(value) == expected


@pytest.mark.parametrize(
    "value", [[], [-1], [2.0], "abc", None], ids=["empty", "negative", "float", "str", "none"]
)
def test_check_normalized_shape_errors(value):
    with pytest.raises(RMSNormError, match=r"normalized_shape=.* is not accepted; expected"):
        check_normalized_shape(value)
