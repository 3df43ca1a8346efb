"""The PyTorch backends of ``rmsnorm verify``: each runs a core ``Problem``.

A backend returns ``(y, s, grads)`` as NumPy (``s`` for residual problems,
``grads = (dx, dscale, dbias)`` where the backend has gradients, else None),
or raises ``NotApplicable`` for a problem it does not cover (e.g. ONNX has no
residual export).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from rmsnorm_core import canonical_axes, dtype_plan, numpy_dtype, param_shape

from ._bridge import to_numpy, to_tensor
from ._compile import COMPILE_OPTIONS
from ._modules import ResidualRMSNorm, RMSNorm
from ._onnx import export_onnx

Result = Tuple[np.ndarray, Optional[np.ndarray], Optional[tuple]]


class NotApplicable(Exception):
    """The backend does not cover this problem."""


def _module(p: Any) -> RMSNorm:
    cls = ResidualRMSNorm if p.residual is not None else RMSNorm
    module = cls.from_spec(p.spec, param_shape(p.spec, p.x.shape))
    with torch.no_grad():
        if p.scale is not None:
            module.weight.data = to_tensor(p.scale)
        if p.bias is not None:
            module.bias.data = to_tensor(p.bias)
    return module.eval()


def _autograd(p: Any, fn: Callable) -> Result:
    module = _module(p)
    run = fn(module)
    x = to_tensor(p.x).requires_grad_(p.x.size > 0)
    out = run(x, to_tensor(p.residual)) if p.residual is not None else run(x)
    y, s = out if isinstance(out, tuple) else (out, None)
    if p.x.size == 0:
        return to_numpy(y), None if s is None else to_numpy(s), None
    y.backward(to_tensor(p.dy))
    grads = tuple(
        None if t is None or t.grad is None else to_numpy(t.grad)
        for t in (x, module.weight, module.bias)
    )
    return to_numpy(y), None if s is None else to_numpy(s), grads


def _forward_only(p: Any, build: Callable) -> Result:
    if p.residual is not None:
        raise NotApplicable("residual variant")
    if p.x.size == 0:
        raise NotApplicable("empty batch")
    module = _module(p)
    dims = canonical_axes(p.spec.axes, p.x.ndim)
    sample = torch.zeros(
        [s if d in dims else 2 for d, s in enumerate(p.x.shape)], dtype=to_tensor(p.x).dtype
    )
    run = build(module, sample)
    with torch.no_grad():
        return run(p.x), None, None


def _compiled(module: RMSNorm, sample: torch.Tensor) -> Callable:
    torch._dynamo.reset()  # each problem is a new module: start from an empty cache
    compiled = torch.compile(module, fullgraph=True, dynamic=True, options=COMPILE_OPTIONS)
    return lambda x: to_numpy(compiled(to_tensor(x)))


def _exported(module: RMSNorm, sample: torch.Tensor) -> Callable:
    dims = canonical_axes(module.spec.axes, sample.dim())
    shapes = ({d: torch.export.Dim.DYNAMIC for d in range(sample.dim()) if d not in dims},)
    program = torch.export.export(module, (sample,), dynamic_shapes=shapes).module()
    return lambda x: to_numpy(program(to_tensor(x)))


def _onnx(exporter: str, opset: int) -> Callable:
    def build(module: RMSNorm, sample: torch.Tensor) -> Callable:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(module, Path(tmp) / "m.onnx", sample, opset=opset, exporter=exporter)
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(x: np.ndarray) -> np.ndarray:
            bf16 = module.spec.param_dtype == "bfloat16" or x.dtype.name == "bfloat16"
            y = session.run(None, {"x": x.astype(np.float32) if bf16 else x})[0]
            # the float32 boundary of a bfloat16 export holds the spec's output values
            out = dtype_plan(module.spec, x.dtype, module.spec.param_dtype).output
            return y.astype(numpy_dtype(out)) if bf16 else y

        return run

    return build


def backends() -> Dict[str, Callable[[Any], Result]]:
    """Name -> runner, in the order the summary lists them."""
    return {
        "torch eager": lambda p: _autograd(p, lambda m: m),
        "TorchScript": lambda p: _autograd(p, torch.jit.script),
        "torch.compile": lambda p: _forward_only(p, _compiled),
        "torch.export": lambda p: _forward_only(p, _exported),
        "ORT torchscript-17": lambda p: _forward_only(p, _onnx("torchscript", 17)),
        "ORT dynamo-18": lambda p: _forward_only(p, _onnx("dynamo", 18)),
        "ORT dynamo-23": lambda p: _forward_only(p, _onnx("dynamo", 23)),
    }
