"""Which kernel computes a call: ``use_kernel`` and :func:`decide`, the one function that
chooses.

``"auto"`` (the default) picks from the input and the plan: a non-empty CPU call that
the native CPU operator takes runs that operator at every size, with or without
autograd (``_cpu_op.py``: one C++ call per forward and per backward, with its autograd
node in C++, where ``torch.rms_norm`` composes several ops, each its own node; the same
bits); otherwise a call of fewer than ``FUSED_LIMIT`` elements that ``torch.rms_norm``
computes exactly runs that op (``_fused.py``); a CUDA tensor whose normalized block is
trailing and contiguous runs the Triton kernel (when ``triton`` is installed; without
it, the paths below, with no error); anything else the graph path (where the operator
is only the pure-Python fallback, ``use_kernel("blocked")`` alone runs it). A complex
CPU input over trailing dims runs ``torch.rms_norm`` at every size (no other kernel
takes complex numbers; the graph path computes torch's op order elsewhere).
A non-contiguous input takes, at every size, the path laid out as its upstream's output
(:func:`torch_layout`): the fused op (contiguous, as ``torch.nn.RMSNorm``'s) for torch's
formula, the graph path (x's strides, as Hugging Face's norms) for the others.
``use_kernel(name)`` forces ``"graph"``, ``"blocked"`` (the CPU operator, at any size)
or ``"triton"`` for the calling thread or asyncio task only (a ``contextvars.ContextVar``,
restored on exit, never process-global): other threads and asyncio tasks keep their own
choice. A generator runs in its caller's context (PEP 567),
so a ``with`` block suspended at a ``yield`` is seen by the caller until the generator
resumes past it or is closed. A forced kernel that cannot run the call is an error that
says why, never a silent fallback. Forcing ``"triton"`` on CPU tensors runs the same
kernel source under the Triton interpreter, which needs ``TRITON_INTERPRET=1`` in the
environment before the kernels are first used.

The choice governs eager calls on plain tensors. Code being traced, compiled or exported
(dynamo, ``jit.trace``, FakeTensors) records the graph path whatever the thread's
choice, so an exported artifact does not depend on it. Scripted
modules, and calls under a ``torch.func`` transform or with a tangent, run the fused op
wherever it computes the call and gives the upstream's layout, at every size, else the
graph path: a saved TorchScript file then holds only torch's own ops and loads in any
process with torch alone. (A scripted Llama, Gemma or T5 norm on a non-contiguous input
so runs the graph path, as the Hugging Face norm scripted does, and TorchScript's own
gradient formulas give both the same bits from the second call, not the eager norm's.)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from enum import Enum
from typing import Optional

import torch
from torch import Tensor

from rmsnorm_core import RMSNormError
from rmsnorm_torch.kernels._fused import FusedKind, fused_kind, limit
from rmsnorm_torch.kernels._native import native_eligible
from rmsnorm_torch.kernels._resolve import OnnxExport, Plan
from rmsnorm_torch.kernels._torch_dtypes import torch_dtype_name

KERNELS = ("auto", "graph", "blocked", "triton")
"""The names ``use_kernel`` accepts."""
FUSED_LIMIT = limit()
"""Calls below this many elements may take the fused op (``_fused.limit``)."""


_CHOICE: contextvars.ContextVar[str] = contextvars.ContextVar("rmsnorm_kernel", default="auto")


class Kernel(Enum):
    """What computes a call (an enum TorchScript compiles).

    Attributes:
        GRAPH: plain differentiable ops (``_graph.py``), on any tensor.
        FUSED: ``torch.rms_norm`` where it computes the spec exactly (``_fused.py``).
        CPU_OP: the native CPU operator (``_cpu_op.py``).
        TRITON: the Triton kernels (``_triton_ops.py``).
        ONNX_NATIVE: ``F.rms_norm``, which an opset-23 export writes as ONNX's op.
    """

    GRAPH = 0
    FUSED = 1
    CPU_OP = 2
    TRITON = 3
    ONNX_NATIVE = 4


@contextlib.contextmanager
def use_kernel(name: str) -> Iterator[None]:
    """Force the kernel for eager calls in this context (thread or task), inside the ``with`` block.

    Args:
        name: ``"auto"`` (the default choice), ``"graph"`` (plain ops),
            ``"blocked"`` (the CPU operator, at any size) or ``"triton"`` (the
            Triton kernel; on CPU tensors under ``TRITON_INTERPRET=1``).

    Raises:
        rmsnorm_core.RMSNormError: an unknown name; later, inside the block, a
            forced kernel that cannot run a call (the message says why).

    Example::

        with rmsnorm_torch.use_kernel("graph"):
            y = layer(x)
    """
    if not isinstance(name, str) or name not in KERNELS:
        raise RMSNormError(f"use_kernel: name must be one of {', '.join(KERNELS)}; got {name!r}")
    token = _CHOICE.set(name)
    try:
        yield
    finally:
        _CHOICE.reset(token)


def current_kernel() -> str:
    """The calling context's choice (``"auto"`` outside any ``use_kernel`` block)."""
    return _CHOICE.get()


def cpu_op_fits(x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """Whether the CPU operator computes this call exactly, at any size: a contiguous CPU
    tensor of half or single precision normalized over trailing dims, eps inside the
    root, the whole block, float32 compute and scale."""
    half_or_single = [torch.float16, torch.bfloat16, torch.float32]
    return (
        x.device.type == "cpu"
        and plan.trailing
        and x.is_contiguous()
        and not plan.eps_outside
        and plan.k < 0
        and plan.compute == torch.float32
        and plan.scale == torch.float32
        and x.dtype in half_or_single
        and (weight is None or weight.dtype in half_or_single)
        and (bias is None or bias.dtype in half_or_single)
    )


def cpu_op_wanted(x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]) -> bool:
    """Whether ``"auto"`` gives this call to the CPU operator where it is native: a call
    it fits (:func:`cpu_op_fits`), at every size but an empty one (torch's own op or the
    graph path lay out empty outputs as the upstreams do)."""
    return x.numel() > 0 and cpu_op_fits(x, plan, weight, bias)


def torch_layout(plan: Plan, bias: Optional[Tensor]) -> bool:
    """Whether the call computes ``torch.nn.RMSNorm``'s formula (trailing dims, the scale
    after the normalization in float32, no offset, no bias, the input's dtype out),
    whose output ``torch.rms_norm`` lays out contiguously; every other spec's upstream
    (Llama, Gemma, T5: chains of elementwise ops) keeps x's strides. OLMo2's norm
    computes torch's formula too and keeps x's strides: the two upstreams disagree on a
    non-contiguous input, and this follows torch's."""
    return (
        plan.trailing
        and not plan.before_scale
        and plan.scale_offset == 0.0
        and not plan.scale_inverse
        and not plan.eps_outside
        and plan.k < 0
        and bias is None
        and plan.out_dtype == plan.in_dtype
    )


def decide(
    x: Tensor,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    onnx_mode: OnnxExport,
    choice: str,
    direct: bool,
    custom: bool,
    triton_fits: bool,
    native_cpu: bool = False,
) -> Kernel:
    """The kernel of one call (module docstring).

    Args:
        choice: the context's ``use_kernel`` name (``"auto"`` in scripted code).
        direct: whether torch's own op may run it: not traced, no tensor subclass.
        custom: whether a custom kernel (CPU operator, Triton) may run it: an eager call
            on plain tensors, not traced (False in scripted code).
        triton_fits: whether the Triton kernel is installed and fits the call.
        native_cpu: whether the CPU operator is the native one: its pure-Python
            fallback is slower than the graph path, so ``"auto"`` takes it only forced.
    """
    if onnx_mode != OnnxExport.OFF:
        if onnx_mode == OnnxExport.NATIVE and native_eligible(x, plan, weight, bias):
            return Kernel.ONNX_NATIVE
        return Kernel.GRAPH
    # A non-contiguous x (the CPU operator takes only contiguous ones) takes the path
    # whose output is laid out as its upstream's, at every size: torch.rms_norm's is
    # contiguous, the graph path's (a chain of elementwise ops, as Hugging Face's norms)
    # keeps x's strides; a size-dependent choice would change y's layout with the batch,
    # and with it the bits of every gradient computed from a cotangent laid out like y.
    # torch's own op also takes complex inputs (no other kernel does) and, at every size,
    # calls where no custom kernel may run (scripted code, a torch.func transform, a
    # tangent: TorchScript's profiling executor differentiates the graph path with its
    # own symbolic formulas, whose gradients' bits are not autograd's)
    strided = not x.is_contiguous()
    if choice == "auto" and strided and not x.is_complex() and not torch_layout(plan, bias):
        return Kernel.GRAPH
    if choice == "auto" and custom and native_cpu and cpu_op_wanted(x, plan, weight, bias):
        return Kernel.CPU_OP
    if (
        choice == "auto"
        and direct
        and (x.numel() < limit() or x.is_complex() or strided or not custom)
    ):
        if fused_kind(x, plan, weight, bias) != FusedKind.UNFIT:
            return Kernel.FUSED
    if choice == "graph" or not custom:
        return Kernel.GRAPH
    if choice == "triton" or (choice == "auto" and triton_fits):
        return Kernel.TRITON
    fits = cpu_op_fits(x, plan, weight, bias)
    if choice == "blocked" and not fits:
        raise RMSNormError(
            "use_kernel('blocked'): the CPU kernel cannot run this call; it takes a plain, "
            "contiguous CPU tensor of float16, bfloat16 or float32 normalized over trailing "
            "dims, eps inside the root, no partial statistic, float32 compute and scale; got "
            "device={}, dims={} of rank {}, contiguous={}, dtype={}, eps_outside={}, "
            "partial={}, compute={}, scale={}".format(
                x.device,
                plan.dims,
                x.dim(),
                x.is_contiguous(),
                torch_dtype_name(x.dtype),
                plan.eps_outside,
                plan.k >= 0,
                torch_dtype_name(plan.compute),
                torch_dtype_name(plan.scale),
            )  # fmt: skip
        )
    if fits and choice == "blocked":
        return Kernel.CPU_OP
    return Kernel.GRAPH
