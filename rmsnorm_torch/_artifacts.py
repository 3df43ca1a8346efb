"""Build, export and check deployment artifacts for the layers of a neutral checkpoint.

Used by ``rmsnorm export``: each layer becomes an ``rmsnorm_torch.RMSNorm``,
is scripted (TorchScript) and/or exported to ONNX, the files are loaded back
and run in TorchScript and ONNX Runtime on an input of another shape than the
export sample, and the max error against core's reference is reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from rmsnorm_core import NeutralLayer, compare, dtype_plan, reference, sample_shape

from ._bridge import modules_from_layers, to_numpy, to_tensor
from ._onnx import export_onnx


@dataclasses.dataclass(frozen=True)
class ArtifactCheck:
    """One artifact's check against the reference."""

    layer: str
    kind: str  # "torchscript" or "onnx"
    path: str
    max_abs: float
    max_rel: float
    passed: bool


def per_layer_path(base: Path, name: str, count: int) -> Path:
    """``base`` itself for a one-layer checkpoint, else ``<stem>.<layer><suffix>``."""
    return base if count == 1 else base.with_name(f"{base.stem}.{name}{base.suffix}")


def _input(layer: NeutralLayer, shape: tuple, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from rmsnorm_core import numpy_dtype

    return (rng.standard_normal(shape) * 2).astype(numpy_dtype(layer.spec.param_dtype))


def _check(
    name: str, kind: str, path: Path, layer: NeutralLayer, x: np.ndarray, y: np.ndarray
) -> ArtifactCheck:
    expected = reference.rms_norm(x, layer.spec, layer.scale, layer.bias)
    plan = dtype_plan(layer.spec, x.dtype, layer.spec.param_dtype)
    result = compare(y.astype(expected.dtype), expected, plan.precision)
    return ArtifactCheck(name, kind, str(path), result.max_abs, result.max_rel, result.passed)


def export_and_check(
    layers: Mapping[str, NeutralLayer],
    *,
    torchscript: Optional[Path],
    onnx: Optional[Path],
    opset: int = 18,
    exporter: str = "dynamo",
    rank: Optional[int] = None,
    progress: Callable[[str], None] = print,
) -> List[ArtifactCheck]:
    """Export every layer as asked and check each artifact; see the module docstring."""
    modules = modules_from_layers(layers)
    checks: List[ArtifactCheck] = []
    for i, (name, module) in enumerate(modules.items(), 1):
        layer = layers[name]
        progress(f"[{i}/{len(modules)}] {name}")
        module.eval()
        x = _input(layer, sample_shape(layer.spec, layer.param_shape, (3,), rank), seed=i)
        if torchscript is not None:
            path = per_layer_path(torchscript, name, len(modules))
            torch.jit.save(torch.jit.script(module), str(path))
            loaded = torch.jit.load(str(path))
            with torch.no_grad():
                y = to_numpy(loaded(to_tensor(x)))
            checks.append(_check(name, "torchscript", path, layer, x, y))
        if onnx is not None:
            import onnxruntime as ort

            path = per_layer_path(onnx, name, len(modules))
            sample = to_tensor(
                _input(layer, sample_shape(layer.spec, layer.param_shape, (2,), rank), seed=0)
            )
            export_onnx(module, path, sample, opset=opset, exporter=exporter)
            options = ort.SessionOptions()
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            feed = x.astype(np.float32) if layer.spec.param_dtype == "bfloat16" else x
            y = session.run(None, {"x": feed})[0]
            checks.append(_check(name, "onnx", path, layer, x, y))
    return checks
