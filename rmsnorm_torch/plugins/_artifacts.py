"""The artifacts ``rmsnorm export`` builds through this backend: TorchScript and ONNX.

Each layer of a neutral checkpoint becomes an ``rmsnorm_torch.RMSNorm``, is
scripted or exported, written atomically, loaded back and run (TorchScript,
ONNX Runtime) on an input of another shape than the export sample; the max
error against core's reference is reported as an ``Artifact``.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import torch

from rmsnorm_core import (
    NeutralLayer,
    RMSNormUsageError,
    compare,
    dtype_plan,
    numpy_dtype,
    reference,
    sample_shape,
    write_atomic,
)
from rmsnorm_core.backends import Artifact, artifact_path, install_command, missing_modules
from rmsnorm_torch.export._onnx import DYNAMO_OPSETS, EXPORTERS, TORCHSCRIPT_OPSETS, export_onnx
from rmsnorm_torch.interop._bridge import modules_from_layers, to_numpy, to_tensor
from rmsnorm_torch.plugins._onnx_requires import ONNX_REQUIRES


def _input(layer: NeutralLayer, rank: Optional[int], batch: int, seed: int) -> np.ndarray:
    shape = sample_shape(layer.spec, layer.param_shape, (batch,), rank)
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 2).astype(numpy_dtype(layer.spec.param_dtype))


def _check(
    name: str, kind: str, path: Path, layer: NeutralLayer, x: np.ndarray, y: np.ndarray
) -> Artifact:
    expected = reference.rms_norm(x, layer.spec, layer.scale, layer.bias)
    plan = dtype_plan(layer.spec, x.dtype, layer.spec.param_dtype)
    result = compare(y.astype(expected.dtype), expected, plan.precision)
    return Artifact(name, kind, str(path), result.max_abs, result.max_rel, result.passed)


def _scripted_bytes(scripted: torch.jit.ScriptModule) -> bytes:
    """The saved archive, in memory: ``torch.jit.save`` to a path writes from C++, where a
    full disk aborts the process; here a failed write is ``write_atomic``'s OSError."""
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def export_torchscript(
    layers: Mapping[str, NeutralLayer], out: Path, options: Any
) -> List[Artifact]:
    """``torch.jit.script`` each layer, save it atomically, load it back and check it."""
    artifacts = []
    for i, (name, module) in enumerate(modules_from_layers(layers).items(), 1):
        print(f"[{i}/{len(layers)}] {name} (torchscript)", flush=True)
        path = artifact_path(out, name, len(layers))
        scripted = torch.jit.script(module.eval())
        write_atomic(path, _scripted_bytes(scripted))
        x = _input(layers[name], options.rank, 3, seed=i)
        with torch.no_grad():
            y = to_numpy(torch.jit.load(str(path))(to_tensor(x)))
        artifacts.append(_check(name, "torchscript", path, layers[name], x, y))
    return artifacts


def export_onnx_files(
    layers: Mapping[str, NeutralLayer], out: Path, options: Any
) -> List[Artifact]:
    """Export each layer to ONNX (atomically), run it in ONNX Runtime and check it."""
    import onnxruntime as ort

    artifacts = []
    for i, (name, module) in enumerate(modules_from_layers(layers).items(), 1):
        print(f"[{i}/{len(layers)}] {name} (onnx)", flush=True)
        layer = layers[name]
        path = artifact_path(out, name, len(layers))
        sample = to_tensor(_input(layer, options.rank, 2, seed=0))
        export_onnx(module, path, sample, opset=options.opset, exporter=options.exporter)
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        session = ort.InferenceSession(
            str(path), session_options, providers=["CPUExecutionProvider"]
        )
        x = _input(layer, options.rank, 3, seed=i)
        feed = x.astype(np.float32) if layer.spec.param_dtype == "bfloat16" else x
        artifacts.append(_check(name, "onnx", path, layer, x, session.run(None, {"x": feed})[0]))
    return artifacts


def add_onnx_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    parser.add_argument(
        "--exporter",
        choices=list(EXPORTERS),
        default="dynamo",
        help="ONNX exporter (default dynamo)",
    )


def check_onnx_arguments(options: Any) -> None:
    """Refuse an opset the chosen exporter cannot write, or an exporter whose packages
    are not installed, before anything is written."""
    valid = TORCHSCRIPT_OPSETS if options.exporter == "torchscript" else DYNAMO_OPSETS
    if options.opset not in valid:
        raise RMSNormUsageError(
            f"--opset {options.opset} is not accepted with --exporter {options.exporter}; "
            f"expected {valid.start} to {valid.stop - 1}"
        )
    missing = missing_modules(ONNX_REQUIRES[options.exporter])
    if missing:
        raise RMSNormUsageError(
            f"--onnx with --exporter {options.exporter} needs {', '.join(missing)}, not "
            f"installed: {install_command(missing)}"
        )
