"""The Triton kernels: forward (plain and residual, one kernel) and backward.

Layout: a trailing, contiguous normalized block, so ``x`` is ``(M, N)`` rows.
One program normalizes one row in the forward pass; a backward program takes a
run of rows and writes its own float32 partial sums of ``dw`` and ``db``
(reduced once, by the caller, in a fixed order: no atomics, the same bits
every run). A row wider than ``BLOCK`` is processed in column blocks
(``ONE_BLOCK`` false): two passes over it, the first for the statistic.

The same source runs compiled on a GPU and under ``TRITON_INTERPRET=1`` on CPU
tensors, and computes the same bits in both: half values are loaded and
converted to float32 at once (bfloat16 as bit patterns, which the interpreter
cannot do arithmetic on), everything is computed in float32, rounding to
bfloat16 goes through :func:`bf16_bits` (round to nearest even, by integer
arithmetic: the interpreter's own cast has been seen to truncate), and the
root and divisions are the correctly rounded ``sqrt_rn`` / ``div_rn`` (no
libdevice, no approximate ``sqrt``). Dtype kinds: 0 float32, 1 float16,
2 bfloat16 (pointer passed as an int16 view), 3 float64 (output only).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def bf16_bits(v):
    """float32 -> bfloat16 bit pattern, round to nearest even; NaN stays (quiet) NaN."""
    bits = v.to(tl.uint32, bitcast=True)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return tl.where(v != v, (bits >> 16) | 0x40, rounded).to(tl.uint16)


@triton.jit
def load_f32(ptr, mask, KIND: tl.constexpr):
    """Load values of dtype ``KIND`` as float32 (exact for every kind but float64)."""
    if KIND == 2:
        bits = tl.load(ptr, mask=mask, other=0).to(tl.uint16, bitcast=True)
        return (bits.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    else:
        return tl.load(ptr, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def round_to(v, KIND: tl.constexpr):
    """``v`` rounded to dtype ``KIND`` and back to float32 (float32: unchanged)."""
    if KIND == 1:
        return v.to(tl.float16).to(tl.float32)
    elif KIND == 2:
        return (bf16_bits(v).to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    else:
        return v


@triton.jit
def store_as(ptr, v, mask, KIND: tl.constexpr):
    """Store float32 ``v`` as dtype ``KIND`` (one rounding, to nearest even)."""
    if KIND == 1:
        tl.store(ptr, v.to(tl.float16), mask=mask)
    elif KIND == 2:
        tl.store(ptr, bf16_bits(v).to(tl.int16, bitcast=True), mask=mask)
    elif KIND == 3:
        tl.store(ptr, v.to(tl.float64), mask=mask)
    else:
        tl.store(ptr, v, mask=mask)


@triton.jit
def _inverse(ss, k, eps, OUTSIDE: tl.constexpr):
    """``1 / sqrt(ms + eps)`` or ``1 / (sqrt(ms) + eps)``, ``ms = ss / k``, correctly rounded."""
    ms = tl.div_rn(ss, k)
    if OUTSIDE:
        return tl.div_rn(1.0, tl.sqrt_rn(ms) + eps)
    else:
        return tl.div_rn(1.0, tl.sqrt_rn(ms + eps))


@triton.jit
def _source(X, R, S, offs, mask, X_KIND: tl.constexpr, R_KIND: tl.constexpr,
            S_KIND: tl.constexpr, HAS_R: tl.constexpr):  # fmt: skip
    """The row segment the norm reads: ``x``, or ``s = x + r`` rounded and stored."""
    h = load_f32(X + offs, mask, X_KIND)
    if HAS_R:
        h = round_to(h + load_f32(R + offs, mask, R_KIND), S_KIND)
        store_as(S + offs, h, mask, S_KIND)
    return h


@triton.jit
def _finish(h, inv, W, B, cols, mask, offset, IN_KIND: tl.constexpr, BEFORE: tl.constexpr,
            HAS_W: tl.constexpr, HAS_B: tl.constexpr, INVERSE: tl.constexpr):  # fmt: skip
    if INVERSE and HAS_W:  # flax's order, h * (inv * g); the spec has no cast before it
        y = h * (inv * (tl.load(W + cols, mask=mask, other=0.0) + offset))
    else:
        y = h * inv
        if BEFORE:
            y = round_to(y, IN_KIND)
        if HAS_W:
            y = y * (tl.load(W + cols, mask=mask, other=0.0) + offset)
    if HAS_B:
        y = y + tl.load(B + cols, mask=mask, other=0.0)
    return y


@triton.jit
def forward_kernel(X, R, S, Y, W, B, RSTD, N, K, k, eps, offset,
                   X_KIND: tl.constexpr, R_KIND: tl.constexpr, S_KIND: tl.constexpr,
                   IN_KIND: tl.constexpr, Y_KIND: tl.constexpr, HAS_R: tl.constexpr,
                   HAS_W: tl.constexpr, HAS_B: tl.constexpr, OUTSIDE: tl.constexpr,
                   BEFORE: tl.constexpr, INVERSE: tl.constexpr, BLOCK: tl.constexpr,
                   ONE_BLOCK: tl.constexpr):  # fmt: skip
    """One row: ``s`` (residual), the float32 inverse rms into ``RSTD``, ``y``.

    ``K`` is the partial count, the columns that enter the statistic (``N``
    when there is no partial), and ``k`` the same count as a float (the divisor).
    """
    row = tl.program_id(0).to(tl.int64)
    base = row * N
    if ONE_BLOCK:
        cols = tl.arange(0, BLOCK)
        mask = cols < N
        h = _source(X, R, S, base + cols, mask, X_KIND, R_KIND, S_KIND, HAS_R)
        ss = tl.sum(tl.where(cols < K, h * h, 0.0), axis=0)
        inv = _inverse(ss, k, eps, OUTSIDE)
        y = _finish(h, inv, W, B, cols, mask, offset, IN_KIND, BEFORE, HAS_W, HAS_B, INVERSE)
        store_as(Y + base + cols, y, mask, Y_KIND)
    else:
        ss = 0.0
        for start in range(0, N, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < N
            h = _source(X, R, S, base + cols, mask, X_KIND, R_KIND, S_KIND, HAS_R)
            ss += tl.sum(tl.where(cols < K, h * h, 0.0), axis=0)
        inv = _inverse(ss, k, eps, OUTSIDE)
        for start in range(0, N, BLOCK):
            cols = start + tl.arange(0, BLOCK)
            mask = cols < N
            if HAS_R:
                h = load_f32(S + base + cols, mask, S_KIND)
            else:
                h = load_f32(X + base + cols, mask, X_KIND)
            y = _finish(h, inv, W, B, cols, mask, offset, IN_KIND, BEFORE, HAS_W, HAS_B, INVERSE)
            store_as(Y + base + cols, y, mask, Y_KIND)
    tl.store(RSTD + row, inv)


@triton.jit
def _coef(ss, inv, k, OUTSIDE: tl.constexpr):
    """The factor of ``h_i * sum(dy*g*h)`` in ``dx_i`` (for ``i < K``): ``inv^3 / k``
    inside the root; ``inv^2 / (k * sqrt(ms))`` outside it, 0 at ``ms == 0`` (the
    spec's edge rule: the gradient of ``sqrt`` at 0 is taken as 0)."""
    if OUTSIDE:
        r = tl.sqrt_rn(tl.div_rn(ss, k))
        return tl.where(r > 0, tl.div_rn(inv * inv, tl.where(r > 0, k * r, 1.0)), 0.0)
    else:
        return tl.div_rn(inv * inv * inv, k)


@triton.jit
def backward_kernel(DY, X, DS, DX, W, RSTD, DW, DB, M, N, K, k, offset, rows_per_program,
                    X_KIND: tl.constexpr, DY_KIND: tl.constexpr, DX_KIND: tl.constexpr,
                    IN_KIND: tl.constexpr, HAS_DS: tl.constexpr, HAS_W: tl.constexpr,
                    HAS_B: tl.constexpr, OUTSIDE: tl.constexpr, BEFORE: tl.constexpr,
                    BLOCK: tl.constexpr, ONE_BLOCK: tl.constexpr):  # fmt: skip
    """``dx`` (plus ``DS``, the gradient reaching a stored residual sum) for a run of
    rows, and this program's float32 partial sums of ``dw`` / ``db`` (row ``pid``
    of ``DW`` / ``DB``, zero-initialized by the caller).

    ``dx_i = inv * dy_i g_i - [i < K] h_i * coef * sum_j(dy_j g_j h_j)``;
    ``dw_i = sum over rows of dy_i * (h_i * inv)``, that product rounded to the
    input dtype where the spec rounds it (``BEFORE``), as autograd of the graph
    path gives.
    """
    pid = tl.program_id(0).to(tl.int64)
    first = pid * rows_per_program  # int64: a loop over it indexes past 2**31 elements
    last = tl.minimum(first + rows_per_program, M)
    part = pid * N
    if ONE_BLOCK:
        cols = tl.arange(0, BLOCK)
        mask = cols < N
        g = 1.0
        if HAS_W:
            g = tl.load(W + cols, mask=mask, other=0.0) + offset
        dw = tl.zeros([BLOCK], dtype=tl.float32)
        db = tl.zeros([BLOCK], dtype=tl.float32)
        for row in range(first, last):
            base = row * N
            h = load_f32(X + base + cols, mask, X_KIND)
            dy = load_f32(DY + base + cols, mask, DY_KIND)
            inv = tl.load(RSTD + row)
            dw += dy * round_to(h * inv, IN_KIND) if BEFORE else dy * (h * inv)
            db += dy
            ss = tl.sum(tl.where(cols < K, h * h, 0.0), axis=0)
            c = tl.sum(dy * g * h, axis=0)
            dx = inv * (dy * g) - tl.where(cols < K, h * (_coef(ss, inv, k, OUTSIDE) * c), 0.0)
            if HAS_DS:
                dx += load_f32(DS + base + cols, mask, DX_KIND)
            store_as(DX + base + cols, dx, mask, DX_KIND)
        if HAS_W:
            tl.store(DW + part + cols, dw, mask=mask)
        if HAS_B:
            tl.store(DB + part + cols, db, mask=mask)
    else:
        for row in range(first, last):
            base = row * N
            inv = tl.load(RSTD + row)
            ss = 0.0
            c = 0.0
            for start in range(0, N, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = cols < N
                h = load_f32(X + base + cols, mask, X_KIND)
                dy = load_f32(DY + base + cols, mask, DY_KIND)
                if HAS_W:
                    dy = dy * (tl.load(W + cols, mask=mask, other=0.0) + offset)
                ss += tl.sum(tl.where(cols < K, h * h, 0.0), axis=0)
                c += tl.sum(dy * h, axis=0)
            coef = _coef(ss, inv, k, OUTSIDE) * c
            for start in range(0, N, BLOCK):
                cols = start + tl.arange(0, BLOCK)
                mask = cols < N
                h = load_f32(X + base + cols, mask, X_KIND)
                dy = load_f32(DY + base + cols, mask, DY_KIND)
                dyg = dy
                if HAS_W:
                    dyg = dy * (tl.load(W + cols, mask=mask, other=0.0) + offset)
                    yn = round_to(h * inv, IN_KIND) if BEFORE else h * inv
                    acc = tl.load(DW + part + cols, mask=mask, other=0.0)
                    tl.store(DW + part + cols, acc + dy * yn, mask=mask)
                if HAS_B:
                    acc = tl.load(DB + part + cols, mask=mask, other=0.0)
                    tl.store(DB + part + cols, acc + dy, mask=mask)
                dx = inv * dyg - tl.where(cols < K, h * coef, 0.0)
                if HAS_DS:
                    dx += load_f32(DS + base + cols, mask, DX_KIND)
                store_as(DX + base + cols, dx, mask, DX_KIND)
