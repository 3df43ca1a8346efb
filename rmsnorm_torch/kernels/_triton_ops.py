"""The Triton kernels as torch custom ops: ``rmsnorm_bridge::triton_forward`` and
``rmsnorm_bridge::triton_backward``, with fake (meta) implementations, autograd
and a decomposition into plain ops.

They work on the flattened layout ``(M, n)``: the caller passes a contiguous
``x`` whose trailing ``n`` elements per row are the normalized block, and the
scale and bias flattened, in float32 (the spec forms ``g`` in float32; the
cast outside the op carries the gradient back to the parameters' dtype). The
forward returns ``(y, s, rstd)``: ``s`` is the stored residual sum (an empty
tensor without a residual), ``rstd`` the float32 inverse rms per row, saved for
the backward. ``mid_dtype`` is where ``before_scale`` rounds ``h * inv`` (the input
dtype, or the parameters' for ``output_dtype="param"``: the plan's ``mid``).

Traced, compiled and exported code never reaches these ops through
``rms_norm`` (it records the graph path); called directly they still work
there: the fake implementations give shapes to ``torch.compile`` and
``torch.export``, and :func:`decompositions` maps each op to plain ops for
``ExportedProgram.run_decompositions`` (the ONNX-fusable graph).
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_torch.kernels._graph import rms_norm_graph
from rmsnorm_torch.kernels._resolve import Plan

#: Kernel dtype kinds (see ``_triton_kernels``).
KINDS = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2, torch.float64: 3}
#: Widest column block; wider rows loop over blocks.
MAX_BLOCK = 16384


def _kernels() -> Any:
    from rmsnorm_torch.kernels import _triton_kernels

    return _triton_kernels


def interpreted() -> bool:
    """Whether the kernels run under the Triton interpreter (``TRITON_INTERPRET=1``
    was set when they were defined, at their first use)."""
    return type(_kernels().forward_kernel).__name__ == "InterpretedFunction"


def _ptr(t: Optional[Tensor], dummy: Tensor) -> Tensor:
    """A kernel pointer argument: bfloat16 as its int16 bit view, absent as ``dummy``."""
    if t is None:
        return dummy
    return t.view(torch.int16) if t.dtype == torch.bfloat16 else t


def settings(n: int) -> Tuple[int, bool, int]:
    """``(BLOCK, ONE_BLOCK, num_warps)`` for rows of ``n`` elements (Liger's warp rule)."""
    block = min(max(16, 1 << (n - 1).bit_length()), MAX_BLOCK)
    warps = 32 if block >= 32768 else 16 if block >= 8192 else 8 if block >= 2048 else 4
    return block, block >= n, warps


def _programs(x: Tensor, rows: int) -> int:
    """Backward programs: one per multiprocessor on a GPU (each owns a partial-sum row)."""
    if x.is_cuda:
        return max(1, min(rows, torch.cuda.get_device_properties(x.device).multi_processor_count))
    return max(1, min(rows, 4))


def _launch_scope(x: Tensor) -> Any:
    """The kernel's device; under the interpreter (NumPy arithmetic) no floating-point
    warnings: NaN and Inf rows are the spec's, as on a GPU, which does not warn."""
    if interpreted():
        import numpy as np

        return np.errstate(all="ignore")
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


@torch.library.custom_op("rmsnorm_bridge::triton_forward", mutates_args=())
def triton_forward(
    x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], bias: Optional[Tensor],
    n: int, k: int, eps: float, eps_outside: bool, before_scale: bool,
    mid_dtype: torch.dtype, out_dtype: torch.dtype, store_dtype: torch.dtype, scale_offset: float,
    scale_inverse: bool,
) -> Tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``(y, s, rstd)`` by the Triton forward kernel (module docstring)."""
    rows = x.numel() // n
    y = torch.empty(x.shape, dtype=out_dtype, device=x.device)
    s = x.new_empty(x.shape if residual is not None else (0,), dtype=store_dtype)
    rstd = torch.empty(rows, dtype=torch.float32, device=x.device)
    block, one, warps = settings(n)
    with _launch_scope(x):
        _kernels().forward_kernel[(rows,)](
            _ptr(x, rstd), _ptr(residual, rstd), _ptr(s, rstd), _ptr(y, rstd),
            _ptr(weight, rstd), _ptr(bias, rstd), rstd, n, k, float(k), eps, scale_offset,
            X_KIND=KINDS[x.dtype], R_KIND=KINDS[(x if residual is None else residual).dtype],
            S_KIND=KINDS[store_dtype], IN_KIND=KINDS[mid_dtype], Y_KIND=KINDS[out_dtype],
            HAS_R=residual is not None, HAS_W=weight is not None, HAS_B=bias is not None,
            OUTSIDE=eps_outside, BEFORE=before_scale, INVERSE=scale_inverse, BLOCK=block,
            ONE_BLOCK=one,
            num_warps=warps,
        )  # fmt: skip
    return y, s, rstd


@triton_forward.register_fake
def _forward_fake(x: Tensor, residual: Optional[Tensor], *args: Any) -> Tuple[Tensor, ...]:
    n, out_dtype, store_dtype = args[2], args[8], args[9]
    y = x.new_empty(x.shape, dtype=out_dtype)
    s = x.new_empty(x.shape if residual is not None else (0,), dtype=store_dtype)
    return y, s, x.new_empty(x.numel() // n, dtype=torch.float32)


@torch.library.custom_op("rmsnorm_bridge::triton_backward", mutates_args=())
def triton_backward(
    dy: Tensor, h: Tensor, rstd: Tensor, ds: Optional[Tensor], weight: Optional[Tensor],
    has_bias: bool, n: int, k: int, eps_outside: bool, before_scale: bool,
    mid_dtype: torch.dtype, scale_offset: float,
) -> Tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """``(dh, dweight, dbias)`` by the Triton backward kernel; ``dh`` in ``h``'s dtype
    (plus ``ds``), the parameter gradients in float32 (empty where absent)."""
    rows = h.numel() // n
    dy = dy.contiguous()
    ds = None if ds is None else ds.to(h.dtype).contiguous()
    dh = torch.empty_like(h)
    programs = _programs(h, rows)
    zeros = torch.zeros((programs, n), dtype=torch.float32, device=h.device)
    dw_part = zeros if weight is not None else rstd
    db_part = torch.zeros_like(zeros) if has_bias else rstd
    block, one, warps = settings(n)
    with _launch_scope(h):
        _kernels().backward_kernel[(programs,)](
            _ptr(dy, rstd), _ptr(h, rstd), _ptr(ds, rstd), _ptr(dh, rstd), _ptr(weight, rstd),
            rstd, dw_part, db_part, rows, n, k, float(k), scale_offset,
            -(-rows // programs), X_KIND=KINDS[h.dtype], DY_KIND=KINDS[dy.dtype],
            DX_KIND=KINDS[h.dtype], IN_KIND=KINDS[mid_dtype], HAS_DS=ds is not None,
            HAS_W=weight is not None, HAS_B=has_bias, OUTSIDE=eps_outside, BEFORE=before_scale,
            BLOCK=block, ONE_BLOCK=one, num_warps=warps,
        )  # fmt: skip
    empty = rstd.new_empty(0)
    dw = dw_part.sum(0) if weight is not None else empty
    return dh, dw, db_part.sum(0) if has_bias else empty.clone()


@triton_backward.register_fake
def _backward_fake(dy: Tensor, h: Tensor, rstd: Tensor, ds: Any, weight: Any, has_bias: bool,
                   n: int, *args: Any) -> Tuple[Tensor, ...]:  # fmt: skip
    dw = rstd.new_empty(n if weight is not None else 0)
    return torch.empty_like(h), dw, rstd.new_empty(n if has_bias else 0)


def graph_forward(
    x: Tensor, residual: Optional[Tensor], weight: Optional[Tensor], bias: Optional[Tensor],
    n: int, k: int, eps: float, eps_outside: bool, before_scale: bool,
    mid_dtype: torch.dtype, out_dtype: torch.dtype, store_dtype: torch.dtype, scale_offset: float,
    scale_inverse: bool,
) -> Tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """What :func:`triton_forward` computes, as the graph path's plain ops (the
    decomposition for export, and the differentiable form for double backward)."""
    s = x.new_empty(0, dtype=store_dtype)
    h = x
    if residual is not None:
        wide = torch.promote_types(store_dtype, residual.dtype)
        s = h = torch.add(x.to(wide), residual.to(wide)).to(store_dtype)
    plan = Plan([1], True, k if k < n else -1, eps, eps_outside, torch.float32, torch.float32,
                before_scale, mid_dtype, out_dtype, mid_dtype, scale_offset,
                scale_inverse and weight is not None, False)  # fmt: skip
    h2 = h.reshape(-1, n)
    y = rms_norm_graph(h2, plan, weight, bias).reshape(x.shape)
    ms = h2.float()[:, :k].pow(2).mean(-1)
    rstd = 1 / (ms.sqrt() + eps) if eps_outside else torch.rsqrt(ms + eps)
    return y, s, rstd


def decompositions() -> dict:
    """``{op: plain-op implementation}`` for ``ExportedProgram.run_decompositions``."""
    return {torch.ops.rmsnorm_bridge.triton_forward.default: graph_forward}


def _setup(ctx: Any, inputs: Tuple[Any, ...], output: Tuple[Tensor, ...]) -> None:
    x, residual, weight, bias = inputs[:4]
    ctx.args = inputs[4:]
    ctx.dtypes = (x.dtype, None if residual is None else residual.dtype)
    saved_s = output[1] if residual is not None else None
    ctx.save_for_backward(x, residual, weight, bias, saved_s, output[2])


def _backward(ctx: Any, dy: Tensor, ds: Optional[Tensor], _drstd: Any) -> Tuple[Any, ...]:
    x, residual, weight, bias, s, rstd = ctx.saved_tensors
    n, k, _eps, outside, before, mid_dtype, _out, _store, offset, _inverse = ctx.args
    needs = ctx.needs_input_grad
    if torch.is_grad_enabled():  # create_graph=True: differentiate the plain ops
        return _graph_backward(ctx, (x, residual, weight, bias), dy, ds)
    h = s if residual is not None else x
    ds = ds if residual is not None and ds is not None and ds.numel() else None
    dh, dw, db = triton_backward(
        dy, h, rstd, ds, weight, bias is not None, n, k, outside, before, mid_dtype, offset
    )
    dx = dh.to(ctx.dtypes[0]) if needs[0] else None
    dr = dh.to(ctx.dtypes[1]) if residual is not None and needs[1] else None
    grads = (dx, dr, dw if needs[2] else None, db if needs[3] else None)
    return (*grads, *([None] * 10))


def _graph_backward(ctx: Any, inputs: Tuple[Any, ...], dy: Tensor, ds: Any) -> Tuple[Any, ...]:
    needs = ctx.needs_input_grad[:4]
    wanted = [t for t, need in zip(inputs, needs, strict=True) if need and t is not None]
    with torch.enable_grad():
        y, s, _ = graph_forward(*inputs, *ctx.args)
        pairs = [(y, dy)] + ([(s, ds)] if inputs[1] is not None and ds is not None else [])
        outs, gouts = zip(*pairs, strict=True)
        grads = iter(torch.autograd.grad(outs, wanted, gouts, create_graph=True))
    got = [
        next(grads) if need and t is not None else None
        for t, need in zip(inputs, needs, strict=True)
    ]
    return (*got, *([None] * 10))


triton_forward.register_autograd(_backward, setup_context=_setup)
