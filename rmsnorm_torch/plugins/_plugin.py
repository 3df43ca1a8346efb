"""The torch backend as core sees it: verify runners, state-dict files, TorchScript/ONNX.

Registered in ``pyproject.toml`` under ``rmsnorm_bridge.backends``; core finds
it through that entry point and never imports this package by name. Every
capability is declared here without importing torch (``rmsnorm_core.backends.lazy``):
a command imports torch when it uses one.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from rmsnorm_core.backends import Backend, CheckpointFormat, Exporter, Runner, lazy
from rmsnorm_torch.plugins._benchmarks import benchmarks, sweeps
from rmsnorm_torch.plugins._benchmarks_gpu import gpu_benchmarks
from rmsnorm_torch.plugins._onnx_requires import ONNX_REQUIRES

_ARTIFACTS = "rmsnorm_torch.plugins._artifacts"
_STATE_DICTS = "rmsnorm_torch.interop._statedict_files"
_RUNNERS = "rmsnorm_torch.plugins._verify_runners"
_FALLBACK = "rmsnorm_torch.plugins._fallback_runner"
_UPSTREAM = "rmsnorm_torch.plugins._upstream"
INDUCTOR_FUSES = "Inductor generates a fused kernel of its own: its reductions round in its order"
ORT_FUSES = "ONNX Runtime runs kernels of its own (fused or not): they round in their own order"
SHARDED = "a statistic reduced across processes sums in another order than one process"
INDUCTOR_SHAPES = (
    "Inductor specializes a batch of 1 and may reduce its row in another order; "
    "torch.compile of F.rms_norm differs the same way"
)

HF = {
    "llama": "transformers.models.llama.modeling_llama:LlamaRMSNorm",
    "gemma": "transformers.models.gemma.modeling_gemma:GemmaRMSNorm",
    "olmo2": "transformers.models.olmo2.modeling_olmo2:Olmo2RMSNorm",
    "t5": "transformers.models.t5.modeling_t5:T5LayerNorm",
}
"""preset -> the Hugging Face class (``module:name``) its ``upstream-hf-<preset>`` runner runs."""


def runners() -> list[Runner]:
    """The torch runners, in the order the summary lists them (``_verify_runners.py``
    runs them, ``_upstream.py`` the upstream ones): declared without importing torch."""
    export = {"quick": False, "residual": False, "empty": False}
    onnx = lazy(_RUNNERS, "onnx_run")
    upstream = [
        Runner("upstream-torch", lazy(_UPSTREAM, "torch_run"), residual=False, upstream="torch")
    ]
    for preset, path in HF.items():  # without transformers: skipped, saying what to install
        run = partial(lazy(_UPSTREAM, "hf_run"), preset, path)
        upstream.append(
            Runner(f"upstream-hf-{preset}", run, residual=False, upstream=preset,
                   requires=("transformers",))
        )  # fmt: skip
    return [
        Runner("torch-eager", lazy(_RUNNERS, "eager_run"), gradients=True),
        Runner("torch-script", lazy(_RUNNERS, "script_run"), gradients=True),
        Runner("torch-compile", lazy(_RUNNERS, "compile_run"), only_tag="compile",
               batch_variance=INDUCTOR_SHAPES, bit_variance=INDUCTOR_FUSES, **export),  # fmt: skip
        Runner("torch-export", lazy(_RUNNERS, "export_run"), only_tag="export", **export),
        Runner(
            "ort-torchscript-17",
            partial(onnx, "torchscript", 17),
            only_tag="export",
            residual=False,
            empty=False,
            requires=ONNX_REQUIRES["torchscript"],
            bit_variance=ORT_FUSES,
        ),
        *(
            Runner(
                f"ort-dynamo-{opset}",
                partial(onnx, "dynamo", opset),
                only_tag="compile",
                requires=ONNX_REQUIRES["dynamo"],
                bit_variance=ORT_FUSES,
                **export,
            )
            for opset in (18, 23)
        ),  # fmt: skip
        Runner("torch-eager-python-cpu", lazy(_FALLBACK, "run_one"), only_tag="large",
               batch=lazy(_FALLBACK, "run_all"), quick=False, gradients=True),  # fmt: skip
        Runner.distributed_batch("torch-dtensor-2procs", lazy(_RUNNERS, "distributed_batch"),
                                 bit_variance=SHARDED),  # fmt: skip
        *upstream,
    ]


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


def _details() -> dict:
    from rmsnorm_torch.kernels._cpu_op import status

    return {"rmsnorm_torch CPU kernel": status()}


BACKEND = Backend(
    name="torch",
    requires=("torch",),
    details=_details,
    runners=tuple(runners()),
    formats=(
        CheckpointFormat(
            "torch",
            (".pt", ".pth", ".bin"),
            "torch",
            lazy(_STATE_DICTS, "read_layers"),
            lazy(_STATE_DICTS, "save_state_dict"),
        ),
    ),
    benchmarks=benchmarks,
    sweeps=sweeps,
    gpu_benchmarks=gpu_benchmarks,
    infer=_infer,
    exporters=(
        Exporter(
            "torchscript",
            "TorchScript output path (OUT.pt)",
            lazy(_ARTIFACTS, "export_torchscript"),
        ),
        Exporter(
            "onnx",
            "ONNX output path (OUT.onnx); see --opset and --exporter",
            lazy(_ARTIFACTS, "export_onnx_files"),
            lazy(_ARTIFACTS, "add_onnx_arguments"),
            lazy(_ARTIFACTS, "check_onnx_arguments"),
        ),
    ),
)
