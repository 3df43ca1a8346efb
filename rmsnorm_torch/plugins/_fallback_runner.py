"""The ``torch-eager-python-cpu`` runner: ``torch-eager`` with the pure-Python CPU kernel.

Where the native CPU operator is built, ``torch-eager`` runs it on calls of
``CPU_OP_MIN`` elements or more; this runner runs the same problems in one child
process started with ``RMSNORM_NATIVE=0``, where the same operator schema is served
by the pure-Python fallback, so ``rmsnorm verify`` judges both kernels (its
``batch`` case is above the operator's threshold).
"""

from __future__ import annotations

from typing import List

from rmsnorm_core.testing import Outcome, Problem, launch_problems, serve_problems

ENV = {"RMSNORM_NATIVE": "0"}
"""The child's environment: the native operator disabled."""


def run_all(problems: List[Problem]) -> List[Outcome]:
    """Every problem in one single-process launch with :data:`ENV`."""
    return launch_problems(__name__, problems, world=1, env=ENV)


def run_one(problem: Problem) -> Outcome:
    """One problem in a launch of its own (the suite's per-problem call)."""
    return run_all([problem])[0]


def main() -> None:
    import sys
    import warnings

    from rmsnorm_torch.plugins._verify_runners import eager_run

    warnings.simplefilter("ignore")  # the fallback's one warning: expected here
    serve_problems(sys.argv[1], eager_run)


if __name__ == "__main__":
    main()
