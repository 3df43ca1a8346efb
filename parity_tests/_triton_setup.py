"""Shared set-up of the Triton tests: the interpreter on a machine without CUDA.

Imported before anything uses the kernels: ``TRITON_INTERPRET`` is read when
triton defines them. With a GPU the same tests run the compiled kernels on
CUDA tensors instead.
"""

from __future__ import annotations

import os
import sys

import pytest

torch = pytest.importorskip("torch")
CUDA = torch.cuda.is_available()
if not CUDA:  # before triton is imported: it reads the variable then
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        # a module collected earlier imported it (a jagged nested tensor or transformers
        # does): every Triton test would fail with "Cannot call @triton.jit'd outside of
        # the scope of a kernel"; make such tensors inside the tests instead
        raise ImportError("triton was imported at collection before the Triton tests' set-up")
    os.environ.setdefault("TRITON_INTERPRET", "1")
DEVICE = "cuda" if CUDA else "cpu"
pytest.importorskip("triton")

from _torch_helpers import to_numpy, to_torch  # noqa: E402

from rmsnorm_core import param_shape  # noqa: E402
from rmsnorm_core.testing import Outcome, Problem  # noqa: E402
from rmsnorm_torch import ResidualRMSNorm, RMSNorm, use_kernel  # noqa: E402


def _on(t: torch.Tensor | None, grad: bool = False) -> torch.Tensor | None:
    return None if t is None else t.to(DEVICE).requires_grad_(grad)


def run_problem(p: Problem, kernel: str = "triton") -> Outcome:
    """``p`` through the module under ``use_kernel(kernel)``: ``y``, ``s`` and gradients."""
    cls = ResidualRMSNorm if p.residual is not None else RMSNorm
    module = cls.from_spec(p.spec, param_shape(p.spec, p.x.shape)).to(DEVICE)
    with torch.no_grad():
        for name, value in (("weight", p.scale), ("bias", p.bias)):
            if value is not None:
                getattr(module, name).copy_(to_torch(value))
    x = _on(to_torch(p.x), grad=True)
    with use_kernel(kernel):
        out = module(x, _on(to_torch(p.residual))) if p.residual is not None else module(x)
        y, s = out if isinstance(out, tuple) else (out, None)
        y.backward(_on(to_torch(p.dy)))
    grads = tuple(None if t is None else to_numpy(t.grad) for t in (x, module.weight, module.bias))
    return Outcome(to_numpy(y), to_numpy(s), grads)  # type: ignore[arg-type]
