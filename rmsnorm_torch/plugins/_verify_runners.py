"""The PyTorch runners of ``rmsnorm verify`` and the test suite: each runs a core ``Problem``.

A runner returns an ``Outcome`` (``y``, the residual sum ``s``, and the
gradients where the path has them); export runners cover forward only and
declare that they take neither residual problems nor empty inputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, List

import numpy as np
import torch

from rmsnorm_core import canonical_axes, dtype_plan, numpy_dtype, param_shape
from rmsnorm_core.testing import Outcome, Problem
from rmsnorm_torch.export._compile import COMPILE_OPTIONS
from rmsnorm_torch.export._onnx import export_onnx
from rmsnorm_torch.interop._bridge import to_numpy, to_tensor
from rmsnorm_torch.nn._modules import RMSNorm
from rmsnorm_torch.nn._residual_module import ResidualRMSNorm


def _module(p: Problem) -> RMSNorm:
    cls = ResidualRMSNorm if p.residual is not None else RMSNorm
    module = cls.from_spec(p.spec, param_shape(p.spec, p.x.shape))
    with torch.no_grad():
        if p.scale is not None:
            module.weight.copy_(to_tensor(p.scale))
        if p.bias is not None:
            module.bias.copy_(to_tensor(p.bias))
    return module.eval()


def _np(t: Any) -> Any:
    return None if t is None else to_numpy(t)


def _autograd(p: Problem, wrap: Callable[[RMSNorm], Callable]) -> Outcome:
    module = _module(p)
    run = wrap(module)
    x = to_tensor(p.x).requires_grad_(p.x.size > 0)
    out = run(x, to_tensor(p.residual)) if p.residual is not None else run(x)
    y, s = out if isinstance(out, tuple) else (out, None)
    if p.x.size == 0:
        return Outcome(to_numpy(y), _np(s))
    y.backward(to_tensor(p.dy))
    grads = tuple(None if t is None else _np(t.grad) for t in (x, module.weight, module.bias))
    return Outcome(to_numpy(y), _np(s), grads)  # type: ignore[arg-type]


def _sample(p: Problem) -> torch.Tensor:
    """The export sample: batch dims of 2, never the problem's own sizes."""
    dims = canonical_axes(p.spec.axes, p.x.ndim)
    shape = [s if d in dims else 2 for d, s in enumerate(p.x.shape)]
    return torch.zeros(shape, dtype=to_tensor(p.x[:0]).dtype)


def _forward_only(
    build: Callable[[RMSNorm, torch.Tensor], Callable],
) -> Callable[[Problem], Outcome]:
    def run(p: Problem) -> Outcome:
        fn = build(_module(p), _sample(p))
        with torch.no_grad():  # one artifact, called at every batch size of the problem
            return Outcome(fn(p.x), batch_ys=tuple(fn(p.x[:k]) for k in p.batches))

    return run


def _compiled(module: RMSNorm, sample: torch.Tensor) -> Callable:
    torch._dynamo.reset()  # each problem is a new module: start from an empty cache
    compiled = torch.compile(module, fullgraph=True, dynamic=True, options=COMPILE_OPTIONS)
    return lambda x: to_numpy(compiled(to_tensor(x)))


def _exported(module: RMSNorm, sample: torch.Tensor) -> Callable:
    dims = canonical_axes(module.spec.axes, sample.dim())
    shapes = ({d: torch.export.Dim.DYNAMIC for d in range(sample.dim()) if d not in dims},)
    program = torch.export.export(module, (sample,), dynamic_shapes=shapes).module()
    return lambda x: to_numpy(program(to_tensor(x)))


def _onnx(exporter: str, opset: int) -> Callable[[RMSNorm, torch.Tensor], Callable]:
    def build(module: RMSNorm, sample: torch.Tensor) -> Callable:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(module, Path(tmp) / "m.onnx", sample, opset=opset, exporter=exporter)
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(x: np.ndarray) -> np.ndarray:
            bf16 = x.dtype.name == "bfloat16"
            y = session.run(None, {"x": x.astype(np.float32) if bf16 else x})[0]
            # the float32 boundary of a bfloat16 export holds the spec's output values
            out = dtype_plan(module.spec, x.dtype, module.spec.param_dtype).output
            return y.astype(numpy_dtype(out)) if bf16 else y

        return run

    return build


def eager_run(p: Problem) -> Outcome:
    """``torch-eager``: the module, forward and gradients."""
    return _autograd(p, lambda m: m)


def script_run(p: Problem) -> Outcome:
    """``torch-script``: the module under ``torch.jit.script``, forward and gradients."""
    return _autograd(p, torch.jit.script)


def compile_run(p: Problem) -> Outcome:
    """``torch-compile``: ``torch.compile(fullgraph=True, dynamic=True)``, forward."""
    return _forward_only(_compiled)(p)


def export_run(p: Problem) -> Outcome:
    """``torch-export``: ``torch.export`` with dynamic batch dims, forward."""
    return _forward_only(_exported)(p)


def onnx_run(exporter: str, opset: int, p: Problem) -> Outcome:
    """``ort-<exporter>-<opset>``: exported to ONNX, run by ONNX Runtime, forward."""
    return _forward_only(_onnx(exporter, opset))(p)


def distributed_batch(problems: List[Problem]) -> List[Outcome]:
    """``torch-dtensor-2procs``: every problem on two gloo processes (DTensor)."""
    from rmsnorm_torch.plugins._distributed_runner import run_all

    return run_all(problems)
