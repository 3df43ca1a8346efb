"""``rmsnorm verify`` judges both CPU kernels: ``torch-eager`` runs the native operator
above its threshold, ``torch-eager-python-cpu`` the pure-Python fallback (a child process
with ``RMSNORM_NATIVE=0``) on the ``large`` cases."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import textwrap

import pytest

from rmsnorm_core import preset
from rmsnorm_core.backends import backends
from rmsnorm_core.testing import cases, check_outcome, in_one_launch

pytest.importorskip("torch")


def _runner():
    return next(r for r in backends()["torch"].runners if r.name == "torch-eager-python-cpu")


def test_the_runner_takes_only_the_large_cases_in_one_launch():
    runner = _runner()
    assert runner.only_tag == "large" and runner.batch is not None and not runner.distributed
    large = cases("large")
    assert large and all("verify" in c.tags for c in large)
    from _sizes import MIDDLE_SIZE

    assert all(math.prod(c.shape) >= MIDDLE_SIZE for c in large)  # past the decode sizes


def test_the_child_runs_without_the_native_operator(monkeypatch):
    from rmsnorm_torch.plugins import _fallback_runner

    seen = {}

    def launch(module, problems, *, world, env=None, timeout=600.0):
        seen.update(module=module, world=world, env=dict(env or {}))
        return []

    monkeypatch.setattr(_fallback_runner, "launch_problems", launch)
    _fallback_runner.run_all([])
    assert seen == {"module": _fallback_runner.__name__, "world": 1,
                    "env": {"RMSNORM_NATIVE": "0"}}  # fmt: skip


@pytest.mark.parametrize("name, dtype", [("llama", "bfloat16"), ("torch", "float32")])
def test_the_fallback_kernel_passes_every_check(name, dtype):
    (case,) = cases("large")
    problem = case.problem(preset(name), dtype)
    (outcome,) = in_one_launch(_runner().batch, [problem])
    results = dict(check_outcome(problem, outcome))
    assert set(results) == {"forward", "gradients", "batch"}
    assert all(r.passed for r in results.values()), {k: r.reason for k, r in results.items()}


# A fallback broken on purpose (both its kernels raise) in a child with RMSNORM_NATIVE=0:
# every large problem the CPU kernel takes must reach it through the runner's own run,
# across presets and dtypes, and the ones it cannot take must run without it.
_MUTANT = textwrap.dedent(
    """
    import json, warnings
    warnings.simplefilter("ignore")
    from rmsnorm_core import preset
    from rmsnorm_core.testing import cases
    from rmsnorm_torch.kernels import _cpu_fallback

    class Broken(Exception):
        pass

    def broken(*args):
        raise Broken()

    _cpu_fallback.forward = _cpu_fallback.backward = broken  # before the operator registers
    from rmsnorm_torch.plugins._fallback_runner import fallback_run, kernel_for

    seen = []
    for case in cases("large"):
        for name, dtype in [("torch", "float32"), ("llama", "bfloat16"), ("gemma", "float16"),
                            ("t5", "bfloat16"), ("torch", "float64")]:
            problem = case.problem(preset(name), dtype)
            try:
                fallback_run(problem)
                reached = False
            except Broken:
                reached = True
            seen.append([name, dtype, kernel_for(problem), reached])
    print(json.dumps(seen))
    """
)


def test_the_child_runs_the_fallback_on_every_problem_it_takes():
    import json

    env = {**os.environ, "RMSNORM_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", _MUTANT], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert {kernel for _, _, kernel, _ in seen} == {"blocked", "auto"}, seen
    assert all(reached == (kernel == "blocked") for _, _, kernel, reached in seen), seen


def _same_bits(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_the_child_computes_the_native_operators_bits_forward_and_backward():
    # verify judges the fallback against the float64 reference within the tolerance table;
    # its promise is more: the native operator's bits, gradients included. Each problem
    # here takes the CPU kernel (the child runs the fallback, this process the native
    # operator), across its branches: a half output, the mid rounding (llama), the offset
    # (gemma), flax's order, T5's split gradient, a bias, and the residual sum
    from rmsnorm_core import RMSNormSpec
    from rmsnorm_core.testing import make_problem
    from rmsnorm_torch.plugins._fallback_runner import kernel_for
    from rmsnorm_torch.plugins._verify_runners import eager_run

    torch_bias = RMSNormSpec.preset("torch").replace(use_bias=True)
    wide_sum = torch_bias.replace(residual_dtype="float32")
    problems = [
        make_problem(spec, dtype, (320, 1024), seed=i, residual=residual)
        for i, (spec, dtype, residual) in enumerate([
            (RMSNormSpec.preset("torch"), "bfloat16", False),
            (RMSNormSpec.preset("llama"), "bfloat16", False),
            (RMSNormSpec.preset("gemma"), "float16", False),
            (RMSNormSpec.preset("flax"), "float32", False),
            (RMSNormSpec.preset("t5"), "bfloat16", False),
            (torch_bias, "float32", False),
            (RMSNormSpec.preset("llama"), "bfloat16", True),
            (wide_sum, "float16", True),
        ])
    ]  # fmt: skip
    # and rows whose mean square is near eps (|x| ~ 3e-3 against llama's 1e-6)
    small = problems[1]
    problems.append(dataclasses.replace(small, x=(small.x * 1e-3).astype(small.x.dtype)))
    assert all(kernel_for(p) == "blocked" for p in problems)
    children = _runner().batch(problems)
    for name, (p, child) in enumerate(zip(problems, children, strict=True)):
        here = eager_run(p)
        assert _same_bits(child.y, here.y) and _same_bits(child.s, here.s), name
        assert len(child.grads) == len(here.grads) == 3, name
        for what, a, b in zip(("dx", "dweight", "dbias"), child.grads, here.grads, strict=True):
            assert _same_bits(a, b), (name, what)
