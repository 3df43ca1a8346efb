"""The shared parity kit: the case table, problems and checkers (public).

``rmsnorm verify`` and the test suite both iterate runners (see
:mod:`rmsnorm_core.backends`) x these cases, and judge every outcome with
:func:`check_outcome`: the float64 reference under the tolerance table,
forward and gradients, plus the bit-for-bit share in half precision.
"""

from rmsnorm_core.parity._batches import in_one_launch, prefix, with_batches
from rmsnorm_core.parity._case_table import (
    CASES,
    CHECKPOINT,
    DTYPES,
    QUICK_DTYPES,
    TAGS,
    Case,
    cases,
    distinct_presets,
)
from rmsnorm_core.parity._problem_files import (
    launch_problems,
    load_outcomes,
    load_problems,
    save_outcomes,
    save_problems,
    serve_problems,
)
from rmsnorm_core.parity._problems import (
    Check,
    Outcome,
    Problem,
    check_batches,
    check_forward,
    check_gradients,
    check_outcome,
    expected_forward,
    make_problem,
    upstream_takes,
)

__all__ = [
    "CASES",
    "CHECKPOINT",
    "DTYPES",
    "QUICK_DTYPES",
    "TAGS",
    "Case",
    "Check",
    "Outcome",
    "Problem",
    "cases",
    "check_batches",
    "check_forward",
    "check_gradients",
    "check_outcome",
    "distinct_presets",
    "expected_forward",
    "in_one_launch",
    "launch_problems",
    "load_outcomes",
    "load_problems",
    "make_problem",
    "prefix",
    "save_outcomes",
    "save_problems",
    "serve_problems",
    "upstream_takes",
    "with_batches",
]
