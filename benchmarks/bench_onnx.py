"""ONNX Runtime on our exports against one hand-built SimplifiedLayerNormalization node.

Input [4096, 4096] float32 on the CPU: our exports through the TorchScript-based
exporter at opset 17 and the dynamo exporter at 18 and 23, each timed against
a model that is a single SimplifiedLayerNormalization node (ORT's fused kernel).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ._harness import register

SIZE = 4096
EXPORTS = (("torchscript", 17), ("dynamo", 18), ("dynamo", 23))


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _hand_built(path: Path, weight, eps: float) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(
        "SimplifiedLayerNormalization", ["x", "weight"], ["y"], axis=-1, epsilon=eps, stash_type=1
    )
    graph = helper.make_graph(
        [node],
        "sln",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SIZE])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", SIZE])],
        [numpy_helper.from_array(weight, "weight")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _register(exporter: str, opset: int) -> None:
    @register(
        f"onnxruntime.{exporter}{opset}[float32]",
        baseline="one SimplifiedLayerNormalization node",
        target=1.2,
        requires=("torch", "onnxruntime", "onnx"),
    )
    def _setup():
        import numpy as np
        import torch

        from rmsnorm_torch import RMSNorm, export_onnx

        folder = Path(tempfile.mkdtemp(prefix="rmsnorm-bench-"))
        module = RMSNorm(SIZE)
        with torch.no_grad():
            module.weight.uniform_(0.5, 1.5)
        ours = _session(
            export_onnx(
                module, folder / "ours.onnx", torch.randn(2, SIZE), opset=opset, exporter=exporter
            )
        )
        weight = module.weight.detach().numpy()
        peer = _session(_hand_built(folder / "peer.onnx", weight, module.eps))
        x = np.random.default_rng(0).standard_normal((SIZE, SIZE)).astype(np.float32)
        return (lambda: ours.run(None, {"x": x})), (lambda: peer.run(None, {"x": x}))


for _exporter, _opset in EXPORTS:
    _register(_exporter, _opset)
