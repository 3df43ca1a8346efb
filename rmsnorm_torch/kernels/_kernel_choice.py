"""Which kernel computes an eager call: ``use_kernel`` and the dispatch it steers.

``"auto"`` (the default) picks from the input and the plan alone: a CPU
call below ``_fused.limit()`` elements that ``torch.rms_norm`` computes
exactly runs that op (``_fused.py``); a CUDA
tensor whose normalized block is trailing and contiguous runs the Triton
kernel (when ``triton`` is installed; without it, the paths below, with no
error); a large enough CPU tensor on that layout the blocked kernel; anything
else the graph path. ``use_kernel(name)`` forces ``"graph"``, ``"blocked"``
or ``"triton"`` for the calling thread or asyncio task only (a
``contextvars.ContextVar``, restored on exit, never process-global): other
threads and asyncio tasks keep their own choice. A generator runs in its
caller's context (PEP 567), so a ``with`` block suspended at a ``yield`` is
seen by the caller until the generator resumes past it or is closed. A
forced kernel that cannot run the call is an error that says why, never a
silent fallback. Forcing ``"triton"`` on CPU tensors runs the same kernel
source under the Triton interpreter, which needs ``TRITON_INTERPRET=1`` in
the environment before the kernels are first used.

The choice governs eager calls on plain tensors. Code being traced, compiled
or exported (dynamo, ``jit.trace``, FakeTensors, ``torch.func`` transforms)
records the graph path whatever the thread's choice, so an exported artifact
does not depend on it; scripted modules run their own TorchScript dispatch.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import math
from collections.abc import Iterator
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core import RMSNormError
from rmsnorm_torch.kernels._eager import _plain, blocked_rms_norm, takes_blocked
from rmsnorm_torch.kernels._fused import FusedKind, fused_kind, fused_norm, limit
from rmsnorm_torch.nn._resolve import Plan
from rmsnorm_torch.nn._torch_dtypes import dtype_name

KERNELS = ("auto", "graph", "blocked", "triton")
"""The names ``use_kernel`` accepts."""
_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
FUSED_LIMIT = limit()
"""Eager calls below this many elements may take the fused op (``_fused.limit``)."""
_CHOICE: contextvars.ContextVar[str] = contextvars.ContextVar("rmsnorm_kernel", default="auto")


@contextlib.contextmanager
def use_kernel(name: str) -> Iterator[None]:
    """Force the kernel for eager calls in this context (thread or task), inside the ``with`` block.

    Args:
        name: ``"auto"`` (the default choice), ``"graph"`` (plain ops),
            ``"blocked"`` (the CPU row-blocked kernel, at any size) or
            ``"triton"`` (the Triton kernel; on CPU tensors under
            ``TRITON_INTERPRET=1``).

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


@functools.cache
def triton_ops() -> Optional[Any]:
    """The custom-op module when ``triton`` imports, else None (never an error)."""
    try:
        if importlib.util.find_spec("triton") is None:
            return None
        from rmsnorm_torch.kernels import _triton_ops
    except Exception:  # a broken triton install: the other paths still work
        return None
    return _triton_ops


def triton_unfit(x: Tensor, plan: Plan, weight: Any, bias: Any, residual: Any = None) -> str:
    """Why the Triton kernel cannot compute this call ("" when it can)."""
    if not plan.trailing:
        return f"the normalized dims {plan.dims} of a rank-{x.dim()} x are not the trailing ones"
    if x.dtype not in _TRITON_DTYPES:
        return f"x is {dtype_name(x.dtype)}; the kernel takes float16, bfloat16 or float32"
    if plan.compute != torch.float32:
        return f"the spec computes in {dtype_name(plan.compute)}; the kernel computes in float32"
    if not x.is_contiguous() or x.numel() == 0:
        return "x is not contiguous" if x.numel() else "x is empty"
    if not all(_plain(t) for t in (x, weight, bias, residual)):
        return "a tensor is a subclass, under a torch.func transform or carries a tangent"
    if residual is not None and (
        residual.dtype not in _TRITON_DTYPES or not residual.is_contiguous()
    ):
        kind = dtype_name(residual.dtype)
        return f"the residual is {kind}, contiguous={residual.is_contiguous()}"
    return ""


def _triton_for(x: Tensor, reason: str, forced: bool) -> Optional[Any]:
    """The op module if the Triton kernel runs this call; raises if forced and it cannot."""
    if not forced:
        ops = None if reason else triton_ops()
        return ops if ops is not None and not ops.interpreted() else None
    ops = triton_ops()
    if ops is None:
        reason = "triton is not installed (pip install 'rmsnorm-bridge[gpu]')"
    elif not x.is_cuda and not ops.interpreted():
        reason = (
            f"x is on {x.device}: the kernel runs on CPU tensors only under the Triton "
            "interpreter; set TRITON_INTERPRET=1 before the kernels are first used"
        )
    if reason:
        raise RMSNormError(
            f"use_kernel('triton'): the Triton kernel cannot run this call: {reason}"
        )
    return ops


def _traced(x: Tensor) -> bool:
    return torch.compiler.is_dynamo_compiling() or torch.jit.is_tracing() or not _plain(x)


def _flat(p: Optional[Tensor]) -> Optional[Tensor]:
    return None if p is None else p.to(torch.float32).reshape(-1).contiguous()


def _triton_args(x: Tensor, plan: Plan, weight: Any, bias: Any) -> Tuple[Any, ...]:
    n = math.prod(x.shape[x.dim() - len(plan.dims) :])
    return (_flat(weight), _flat(bias), n, plan.k if plan.k >= 0 else n, plan.eps,
            plan.eps_outside, plan.before_scale, plan.mid, plan.out_dtype)  # fmt: skip


def eager_norm(x: Tensor, plan: Plan, weight: Any, bias: Any) -> Optional[Tensor]:
    """The thread's kernel for a plain eager call; None for the graph path."""
    if torch.compiler.is_dynamo_compiling() or torch.jit.is_tracing():
        return None
    name = _CHOICE.get()
    if name == "auto" and type(x) is Tensor and x.numel() < FUSED_LIMIT:
        kind = fused_kind(x, plan, weight, bias)  # torch's op: fine under torch.func too
        if kind != FusedKind.UNFIT:
            return fused_norm(x, plan, kind, weight)
    if name == "graph" or _traced(x):
        return None
    if name == "triton" or (name == "auto" and x.is_cuda):  # a CPU call never imports triton
        ops = _triton_for(x, triton_unfit(x, plan, weight, bias), name == "triton")
        if ops is not None:
            args = _triton_args(x, plan, weight, bias)
            return ops.triton_forward(
                x, None, *args, x.dtype, plan.scale_offset, plan.scale_inverse
            )[0]
    if name == "blocked" and not takes_blocked(x, plan, weight, bias, any_size=True):
        raise RMSNormError(_blocked_refusal(x, plan))
    if takes_blocked(x, plan, weight, bias, any_size=name == "blocked"):
        return blocked_rms_norm(x, plan, weight, bias)
    return None


def eager_residual(
    x: Tensor, residual: Tensor, plan: Plan, weight: Any, bias: Any, store: torch.dtype
) -> Optional[Tuple[Tensor, Tensor]]:
    """The thread's fused kernel for a plain eager residual call; None for the unfused ops."""
    from rmsnorm_torch.kernels._residual_eager import fused_residual, takes_fused

    if _traced(x) or residual.shape != x.shape:
        return None  # a shape mismatch is named by the caller's check
    name = current_kernel()
    if name == "auto" and store == x.dtype and x.numel() < FUSED_LIMIT:
        if fused_kind(x, plan, weight, bias) != FusedKind.UNFIT:
            return None  # norm(s) takes the fused op: fused equals unfused by construction
    if name == "graph":
        return None
    if name == "triton" or (name == "auto" and x.is_cuda):  # a CPU call never imports triton
        ops = _triton_for(x, triton_unfit(x, plan, weight, bias, residual), name == "triton")
        if ops is not None:
            args = _triton_args(x, plan, weight, bias)
            y, s, _ = ops.triton_forward(
                x, residual, *args, store, plan.scale_offset, plan.scale_inverse
            )
            return y, s
    if name == "blocked" and not takes_fused(x, residual, plan, weight, bias, any_size=True):
        raise RMSNormError(_blocked_refusal(x, plan) + " (and a plain contiguous residual)")
    if takes_fused(x, residual, plan, weight, bias, any_size=name == "blocked"):
        return fused_residual(x, residual, plan, weight, bias, store)
    return None


def _blocked_refusal(x: Tensor, plan: Plan) -> str:
    return (
        "use_kernel('blocked'): the blocked kernel cannot run this call; it takes a plain, "
        "contiguous CPU tensor normalized over trailing dims, eps inside the root, no partial "
        f"statistic, float32 compute; got device={x.device}, dims={plan.dims} of rank "
        f"{x.dim()}, contiguous={x.is_contiguous()}, eps_outside={plan.eps_outside}, "
        f"partial={plan.k >= 0}, compute={dtype_name(plan.compute)}"
    )
