"""The ONNX Runtime cases of ``rmsnorm bench``: our exports against ORT's fused kernel.

Input [4096, 4096] float32 on the CPU. Each export (TorchScript-based exporter
at opset 17, dynamo at 18 and 23, every preset) is timed against a model that
is one SimplifiedLayerNormalization node with the same gain (``offset + w``)
and eps: ONNX Runtime's own fused kernel. The bfloat16 case exports a
bfloat16 module (float32 inputs and outputs, the bfloat16 rounding points kept)
and times it against the same float32 node.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, List

from rmsnorm_core import RMSNormSpec
from rmsnorm_core.backends import Benchmark

SIZE = 4096
EXPORTS = (("torchscript", 17), ("dynamo", 18), ("dynamo", 23))
REQUIRES = ("torch", "onnxruntime", "onnx")


def session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fused_node(path: Path, gain: Any, eps: float) -> Path:
    """A model of one SimplifiedLayerNormalization node (float32)."""
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
        [numpy_helper.from_array(gain, "weight")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _pair(spec: RMSNormSpec, exporter: str, opset: int, dtype: str) -> Any:
    import numpy as np
    import torch

    from rmsnorm_torch.export._onnx import export_onnx
    from rmsnorm_torch.nn._modules import RMSNorm

    module = RMSNorm.from_spec(spec.replace(param_dtype=dtype), SIZE)
    with torch.no_grad():
        module.weight.uniform_(0.5, 1.5)
        module.weight.sub_(spec.scale_offset)
    sample = torch.randn(2, SIZE).to(getattr(torch, dtype))
    gain = (module.weight.detach().float() + spec.scale_offset).numpy()
    # a session holds its model in memory: the files go as soon as both are loaded,
    # and on the way out of an error, Ctrl-C or a stop signal (the CLI unwinds those)
    with tempfile.TemporaryDirectory(prefix="rmsnorm-bench-") as tmp:
        folder = Path(tmp)
        ours = session(
            export_onnx(module, folder / "ours.onnx", sample, opset=opset, exporter=exporter)
        )
        peer = session(fused_node(folder / "peer.onnx", gain, spec.eps))
    x = np.random.default_rng(0).standard_normal((SIZE, SIZE)).astype(np.float32)
    return (lambda: ours.run(None, {"x": x})), (lambda: peer.run(None, {"x": x}))


def onnx_benchmarks() -> List[Benchmark]:
    """Every exporter x opset x preset in float32, and a bfloat16 module's export."""
    out = []
    for preset, spec in RMSNormSpec.presets().items():
        for exporter, opset in EXPORTS:
            out.append(
                Benchmark(
                    f"onnxruntime.{exporter}{opset}.{preset}[float32]",
                    "one SimplifiedLayerNormalization node",
                    lambda s=spec, e=exporter, o=opset: _pair(s, e, o, "float32"),
                    1.2,
                    REQUIRES,
                )
            )
    for preset in ("torch", "llama"):
        spec = RMSNormSpec.preset(preset)
        out.append(
            Benchmark(
                f"onnxruntime.dynamo18.{preset}[bfloat16]",
                "one float32 SimplifiedLayerNormalization node",
                lambda s=spec: _pair(s, "dynamo", 18, "bfloat16"),
                3.0,
                REQUIRES,
            )
        )
    return out
