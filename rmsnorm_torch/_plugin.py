"""The torch backend as core sees it: verify runners, state-dict files, TorchScript/ONNX.

Registered in ``pyproject.toml`` under ``rmsnorm_bridge.backends``; core finds
it through that entry point and never imports this package by name.
"""

from __future__ import annotations

from rmsnorm_core.backends import Backend, CheckpointFormat, Exporter

from ._artifacts import (
    add_onnx_arguments,
    check_onnx_arguments,
    export_onnx_files,
    export_torchscript,
)
from ._benchmarks import benchmarks, sweeps
from ._statedict_files import read_layers, save_state_dict
from ._verify_runners import runners

BACKEND = Backend(
    name="torch",
    runners=tuple(runners()),
    formats=(
        CheckpointFormat("torch", (".pt", ".pth", ".bin"), "torch", read_layers, save_state_dict),
    ),
    benchmarks=benchmarks,
    sweeps=sweeps,
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
