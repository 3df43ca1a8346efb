"""The torch backend as core sees it: verify runners, state-dict files, TorchScript/ONNX.

Registered in ``pyproject.toml`` under ``rmsnorm_bridge.backends``; core finds
it through that entry point and never imports this package by name.
"""

from __future__ import annotations

from typing import Any

from rmsnorm_core.backends import Backend, CheckpointFormat, Exporter
from rmsnorm_torch.export._artifacts import (
    add_onnx_arguments,
    check_onnx_arguments,
    export_onnx_files,
    export_torchscript,
)
from rmsnorm_torch.interop._statedict_files import read_layers, save_state_dict
from rmsnorm_torch.plugins._benchmarks import benchmarks, sweeps
from rmsnorm_torch.plugins._benchmarks_gpu import gpu_benchmarks
from rmsnorm_torch.plugins._verify_runners import runners


def _infer(obj: Any, shape: Any) -> Any:
    """``rmsnorm infer``: torch modules and functions of tensors are ours to measure."""
    import torch

    from rmsnorm_torch.interop._infer import infer_spec

    if isinstance(obj, torch.nn.Module):
        return infer_spec(obj, shape)
    if callable(obj) and not isinstance(obj, type) and shape is not None:
        try:  # a function of tensors if a tensor comes back (a JAX function is flax's)
            out = obj(torch.ones((2, *shape)))
        except Exception:
            return None
        return infer_spec(obj, shape) if isinstance(out, torch.Tensor) else None
    return None


BACKEND = Backend(
    name="torch",
    runners=tuple(runners()),
    formats=(
        CheckpointFormat("torch", (".pt", ".pth", ".bin"), "torch", read_layers, save_state_dict),
    ),
    benchmarks=benchmarks,
    sweeps=sweeps,
    gpu_benchmarks=gpu_benchmarks,
    infer=_infer,
    exporters=(
        Exporter("torchscript", "TorchScript output path (OUT.pt)", export_torchscript),
        Exporter(
            "onnx",
            "ONNX output path (OUT.onnx); see --opset and --exporter",
            export_onnx_files,
            add_onnx_arguments,
            check_onnx_arguments,
        ),
    ),
)
