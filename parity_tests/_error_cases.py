"""Shared case tables: error inputs every entry point is checked against.

Each row is ``(id, kwargs, exception type, message pattern)``; ids encode the
parameter and the bad value.
"""

from __future__ import annotations

import math

from rmsnorm_core import RMSNormError, RMSNormTypeError

# Spec fields that the constructor, from_dict and from_json must all refuse.
SPEC_ERRORS = [
    # eps=0 is accepted, as every upstream accepts it (test_eps_zero.py)
    (
        "eps-negative",
        {"eps": -1e-6},
        RMSNormError,
        r"eps=-1e-06 is not accepted; eps must be a finite float >= 0",
    ),
    ("eps-nan", {"eps": math.nan}, RMSNormError, r"eps=nan is not accepted.*finite float >= 0"),
    ("eps-inf", {"eps": math.inf}, RMSNormError, r"eps=inf is not accepted.*finite float >= 0"),
    (
        "eps-string",
        {"eps": "1e-6"},
        RMSNormTypeError,
        r"eps='1e-6' is not accepted; eps must be a real number",
    ),
    (
        "eps-bool",
        {"eps": True},
        RMSNormTypeError,
        r"eps=True is not accepted; eps must be a real number",
    ),
    (
        "eps-underflows-float32",
        {"eps": 1e-46},
        RMSNormError,
        r"eps=1e-46 is not accepted; it underflows the compute dtype \(smallest normal 1\.17\d*e-38\)",
    ),
    (
        "axes-empty",
        {"axes": ()},
        RMSNormError,
        r"axes=\(\) is not accepted; axes must name at least one axis",
    ),
    (
        "axes-duplicate",
        {"axes": (1, 1)},
        RMSNormError,
        r"axes=\(1, 1\) is not accepted; axes must not repeat",
    ),
    (
        "axes-float",
        {"axes": (1.0,)},
        RMSNormTypeError,
        r"axes=\(1\.0,\) is not accepted; every axis must be an int, got 1\.0",
    ),
    (
        "axes-string",
        {"axes": "-1"},
        RMSNormTypeError,
        r"axes='-1' is not accepted; axes must be an int or a non-empty tuple",
    ),
    ("axes-bool", {"axes": (True,)}, RMSNormTypeError, r"every axis must be an int, got True"),
    (
        "partial-zero",
        {"partial": 0.0},
        RMSNormError,
        r"partial=0\.0 is not accepted; partial must satisfy 0 < partial <= 1",
    ),
    ("partial-above-one", {"partial": 1.5}, RMSNormError, r"partial=1\.5 is not accepted"),
    ("partial-nan", {"partial": math.nan}, RMSNormError, r"partial=nan is not accepted"),
    ("partial-negative", {"partial": -0.5}, RMSNormError, r"partial=-0\.5 is not accepted"),
    (
        "eps_placement-unknown",
        {"eps_placement": "middle"},
        RMSNormError,
        r"eps_placement='middle' is not accepted; expected one of 'inside', 'outside'",
    ),
    (
        "compute_dtype-unknown",
        {"compute_dtype": "float8"},
        RMSNormError,
        r"compute_dtype='float8' is not accepted; expected one of 'float32', 'float64', 'input'",
    ),
    (
        "cast_order-unknown",
        {"cast_order": "llama"},
        RMSNormError,
        r"cast_order='llama' is not accepted; expected one of 'after_scale', 'before_scale'",
    ),
    (
        "output_dtype-unknown",
        {"output_dtype": "float32"},
        RMSNormError,
        r"output_dtype='float32' is not accepted; expected one of 'input', 'promote'",
    ),
    (
        "param_dtype-unknown",
        {"param_dtype": "fp32"},
        RMSNormError,
        r"param_dtype='fp32' is not accepted; expected one of 'float16', 'bfloat16', 'float32', 'float64'",
    ),
    (
        "param_dtype-int",
        {"param_dtype": "int32"},
        RMSNormError,
        r"param_dtype='int32' is not accepted",
    ),
    (
        "residual_dtype-unknown",
        {"residual_dtype": "float16"},
        RMSNormError,
        r"residual_dtype='float16' is not accepted; expected one of 'input', 'float32'",
    ),
    (
        "use_scale-int",
        {"use_scale": 1},
        RMSNormTypeError,
        r"use_scale=1 is not accepted; use_scale must be a bool",
    ),
    (
        "use_bias-string",
        {"use_bias": "yes"},
        RMSNormTypeError,
        r"use_bias='yes' is not accepted; use_bias must be a bool",
    ),
    (
        "scale_offset-nan",
        {"scale_offset": math.nan},
        RMSNormError,
        r"scale_offset=nan is not accepted",
    ),
    (
        "scale_offset-string",
        {"scale_offset": "1"},
        RMSNormTypeError,
        r"scale_offset='1' is not accepted",
    ),
    (
        "scale_offset-without-scale",
        {"scale_offset": 1.0, "use_scale": False},
        RMSNormError,
        r"scale_offset=1\.0 needs use_scale=True",
    ),
]

# (id, input shape, spec axes, message pattern): axes valid for the spec but
# not for this input.
AXES_ERRORS = [
    (
        "axis-5-rank-3",
        (2, 3, 4),
        (5,),
        r"axes=\(5,\) is out of range for an input of rank 3; each axis must satisfy -3 <= axis < 3",
    ),
    (
        "axis-minus-4-rank-3",
        (2, 3, 4),
        (-4,),
        r"axes=\(-4,\) is out of range for an input of rank 3",
    ),
    (
        "axes-alias-rank-2",
        (2, 3),
        (1, -1),
        r"axes=\(1, -1\) name the same axis twice for an input of rank 2",
    ),
]
