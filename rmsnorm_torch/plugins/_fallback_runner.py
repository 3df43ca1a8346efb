"""The ``torch-eager-python-cpu`` runner: ``torch-eager`` with the pure-Python CPU kernel.

Where the native CPU operator is built, ``torch-eager`` runs it on every call it
fits; this runner runs the same problems in one child process started with
``RMSNORM_NATIVE=0``, where the operator's kernels are served by the pure-Python
fallback, so ``rmsnorm verify`` judges both kernels.

With only the fallback built, ``"auto"`` takes the graph path (the fallback is the
slower of the two), so the child forces the CPU kernel, ``use_kernel("blocked")``,
on each problem the kernel takes (:func:`kernel_for`); the problems it cannot take
(eps outside the root, a partial statistic, float64 compute...) run under ``"auto"``,
as they do in ``torch-eager``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from rmsnorm_core.testing import Outcome, Problem, launch_problems, serve_problems

if TYPE_CHECKING:
    import torch

ENV = {"RMSNORM_NATIVE": "0"}
"""The child's environment: the native operator disabled."""


def run_all(problems: List[Problem]) -> List[Outcome]:
    """Every problem in one single-process launch with :data:`ENV`."""
    return launch_problems(__name__, problems, world=1, env=ENV)


def run_one(problem: Problem) -> Outcome:
    """One problem in a launch of its own (the suite's per-problem call)."""
    return run_all([problem])[0]


def _normalized(p: Problem, module: torch.nn.Module) -> torch.Tensor:
    """The tensor ``module`` (``p``'s) normalizes: x, or a residual problem's sum ``s``."""
    import torch

    from rmsnorm_torch.interop._bridge import to_tensor

    x = to_tensor(p.x)
    if p.residual is None:
        return x
    with torch.no_grad():
        return module(x, to_tensor(p.residual))[1]


def kernel_for(p: Problem) -> str:
    """``"blocked"`` where the CPU kernel takes the problem's call, else ``"auto"``."""
    from rmsnorm_torch.interop._bridge import to_tensor
    from rmsnorm_torch.kernels._kernel_choice import cpu_op_fits
    from rmsnorm_torch.kernels._resolve import resolve
    from rmsnorm_torch.plugins._verify_runners import _module

    module = _module(p)
    x, s = to_tensor(p.x), _normalized(p, module)
    weight, bias = module.weight, module.bias
    plan = resolve(module._recipe_for(x), s, weight, bias, x.dtype)
    return "blocked" if cpu_op_fits(s, plan, weight, bias) else "auto"


def fallback_run(p: Problem) -> Outcome:
    """``torch-eager``'s run of ``p`` under :func:`kernel_for`'s choice."""
    from rmsnorm_torch.kernels._kernel_choice import use_kernel
    from rmsnorm_torch.plugins._verify_runners import eager_run

    with use_kernel(kernel_for(p)):
        return eager_run(p)


def main() -> None:
    import sys
    import warnings

    from rmsnorm_core import RMSNormWarning

    # the fallback's one warning is this runner's premise; any other reaches the launch's
    # output (shown where a rank fails)
    warnings.filterwarnings(
        "ignore", "rmsnorm_torch: the native CPU kernel is not available", RMSNormWarning
    )
    serve_problems(sys.argv[1], fallback_run)


if __name__ == "__main__":
    main()
