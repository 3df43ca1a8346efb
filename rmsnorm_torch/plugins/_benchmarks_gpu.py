"""The torch cases of ``rmsnorm bench --gpu`` (``rmsnorm_core.bench._bench_gpu``).

Per shape, dtype and direction: ours (eager; the Triton kernel on a CUDA
tensor), ``torch.nn.RMSNorm`` (the peer), ``torch.compile`` d
``torch.nn.RMSNorm`` (not in ``--smoke``: a compile per case), Liger-Kernel's
``LigerRMSNorm`` (``casting_mode="llama"``) when installed, and ``x.clone()``
forward: the bytes of a forward pass copied, the bandwidth this device really
reaches. Forward runs under ``no_grad``; forward+backward is
``autograd.grad`` of the output for ``x`` and the weight with a fixed ``dy``.
Without CUDA only ``--smoke`` runs, ours on CPU tensors under the Triton
interpreter (``TRITON_INTERPRET=1``): it proves the harness, not a speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rmsnorm_core.backends import GpuCase, Timed, Unavailable, gpu_groups


def _inputs(rows: int, cols: int, dtype: str, smoke: bool) -> Any:
    import torch

    if not torch.cuda.is_available() and not smoke:
        raise Unavailable("no CUDA device (--smoke runs the harness on CPU)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(rows, cols, device=device, generator=gen).to(getattr(torch, dtype))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)"
    return torch, x, sync, name


def _timed(make: Callable[[Any, Any], Any], rows: int, cols: int, dtype: str, smoke: bool,
           backward: bool) -> Callable[[], Timed]:  # fmt: skip
    """A setup: ``make(torch, x) -> (fn, params)``, timed forward or forward+backward."""

    def setup() -> Timed:
        torch, x, sync, name = _inputs(rows, cols, dtype, smoke)
        fn, params = make(torch, x)
        if not backward:

            def forward() -> Any:
                with torch.no_grad():
                    return fn(x)

            return Timed(forward, sync, name)
        xg, dy = x.clone().requires_grad_(True), torch.randn_like(x)
        return Timed(lambda: torch.autograd.grad(fn(xg), [xg, *params], dy), sync, name)

    return setup


def _ours(torch: Any, x: Any) -> Any:
    from rmsnorm_torch.kernels._kernel_choice import use_kernel
    from rmsnorm_torch.nn._modules import RMSNorm

    module = RMSNorm(x.shape[-1], dtype=x.dtype, device=x.device)
    kernel = "auto" if x.is_cuda else "triton"  # CPU: --smoke, under the interpreter

    def run(t: Any) -> Any:
        with use_kernel(kernel):
            return module(t)

    return run, [module.weight]


def _torch_nn(torch: Any, x: Any) -> Any:
    module = torch.nn.RMSNorm(x.shape[-1], dtype=x.dtype, device=x.device)
    return module, [module.weight]


def _compiled(torch: Any, x: Any) -> Any:
    module = torch.nn.RMSNorm(x.shape[-1], dtype=x.dtype, device=x.device)
    return torch.compile(module), [module.weight]


def _liger(torch: Any, x: Any) -> Any:
    from liger_kernel.transformers.rms_norm import LigerRMSNorm

    module = LigerRMSNorm(x.shape[-1], casting_mode="llama").to(x.device, x.dtype)
    return module, [module.weight]


def _clone(torch: Any, x: Any) -> Any:
    return (lambda t: t.clone()), []


def gpu_benchmarks(
    shapes: Sequence[tuple[int, int]], dtypes: Sequence[str], smoke: bool
) -> list[GpuCase]:
    """Every contender at every shape, dtype and direction (module docstring)."""
    cases = []
    for g in gpu_groups("torch", shapes, dtypes):
        contenders = [("ours (eager)", _ours, ("torch", "triton")),
                      ("torch.nn.RMSNorm", _torch_nn, ("torch",)),
                      ("LigerRMSNorm", _liger, ("liger_kernel",))]  # fmt: skip
        if not smoke:
            contenders.append(("torch.compile(nn.RMSNorm)", _compiled, ("torch",)))
        if not g.backward:
            contenders.append(("x.clone() (copy)", _clone, ("torch",)))
        for name, make, requires in contenders:
            setup = _timed(make, g.rows, g.cols, g.dtype, smoke, g.backward)
            cases.append(
                GpuCase(g.name, name, g.nbytes, setup, name == "torch.nn.RMSNorm", requires)
            )
    return cases
