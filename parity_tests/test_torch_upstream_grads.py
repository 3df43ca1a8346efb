"""Gradients are the upstream's, bit for bit, at every size: each preset's module against
Hugging Face's norm it reproduces, on each side of ``FUSED_LIMIT``.

Rows of 1024: 7 and 40 (below ``FUSED_LIMIT``: the CPU operator where it is native and
fits, else the fused op or the graph path) and 300 (above it: the CPU operator, or the
graph path).
T5's norm multiplies the half-precision input itself by the float32 inverse rms, so
autograd rounds the two partial gradients of x (through the product and through the
statistic) to half precision and adds them there; ours does the same for the t5 preset.
"""

from __future__ import annotations

import pytest
import torch
from _sweep import covering, sweep
from _torch_helpers import HF_NORMS, bits

from rmsnorm_core import RMSNormSpec
from rmsnorm_torch import RMSNorm

N = 1024
UPSTREAM = HF_NORMS  # imported inside the test, never at collection (HF_NORMS says why)


GRAD_ROWS = [
    (p, d, w, r)
    for p in UPSTREAM
    for d in ("float32", "bfloat16", "float16")
    for w in ("float32", "input")
    for r in (7, 40, 300)
]
# the default run: every upstream in every dtype with each weight dtype, every row count
# (each kernel size class) in every dtype
GRAD_ROWS = sweep(GRAD_ROWS, covering(GRAD_ROWS, [(0, 1, 2), (3, 1)]))


@pytest.mark.parametrize(
    "preset,dtype,weights,rows", GRAD_ROWS, ids=[f"{p}-{d}-{w}-{r}" for p, d, w, r in GRAD_ROWS]
)
def test_forward_and_gradients_equal_the_upstream(preset, dtype, weights, rows):
    x_dtype = getattr(torch, dtype)
    w_dtype = x_dtype if weights == "input" else torch.float32
    module, name = UPSTREAM[preset].split(":")
    upstream = getattr(pytest.importorskip(module), name)
    theirs = upstream(N, eps=1e-6).to(w_dtype)
    g = torch.Generator().manual_seed(rows)
    with torch.no_grad():
        theirs.weight.copy_(torch.randn(N, generator=g) * 0.3 + (preset != "gemma"))
    ours = RMSNorm.from_spec(RMSNormSpec.preset(preset).replace(eps=1e-6), N).to(w_dtype)
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
    x = torch.randn(rows, N, generator=g) * 3
    x[:, ::11] = -0.0  # signed zeros in, and -0 products out (compared bit for bit)
    x = x.to(x_dtype)
    results = []
    for m in (theirs, ours):
        xg = x.clone().requires_grad_()
        y = m(xg)
        dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(5))
        dy[:, ::3] = 0.0
        dy = dy.to(y.dtype)
        results.append([y, *torch.autograd.grad(y, [xg, m.weight], dy)])
    for name, a, b in zip(["y", "dx", "dweight"], *results, strict=True):
        assert a.dtype == b.dtype and torch.equal(bits(a), bits(b)), name
