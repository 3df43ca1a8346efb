"""When the ONNX ``RMSNormalization`` op (opset 23) computes exactly the spec.

The op casts ``x`` to float32, divides by ``sqrt(mean(x^2 over a trailing
block) + epsilon)``, casts back to the input dtype, then multiplies by the
scale. That is the spec when: eps is inside the root, the statistic is the
whole block (no partial), the block is trailing, compute is float32 on a
float16 or float32 input (ONNX Runtime's CPU kernels have no bfloat16
arithmetic, so bfloat16 stays decomposed), there is no offset and no bias, the scale (if any)
has the input's dtype, and either the spec casts before the scale or the
input is float32 (where the two cast orders coincide).

Only the dynamo exporter at opset >= 23 emits it, through
``torch.nn.functional.rms_norm``, which its torchlib translates to the op.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import List, Optional

import torch
from torch import Tensor

_ALLOWED = [False]


@contextlib.contextmanager
def allowed(enable: bool) -> Iterator[None]:
    """Let the graph path emit ``F.rms_norm`` while an export runs."""
    previous = _ALLOWED[0]
    _ALLOWED[0] = enable
    try:
        yield
    finally:
        _ALLOWED[0] = previous


def native_eligible(
    x: Tensor,
    dims: List[int],
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    eps_placement: str,
    compute: torch.dtype,
    before_scale: bool,
    scale_offset: float,
    partial: float,
    in_dtype: torch.dtype,
) -> bool:
    """Whether ``RMSNormalization`` equals the spec for this call (module docstring)."""
    rank = x.dim()
    return (
        _ALLOWED[0]
        and x.dtype == in_dtype
        and x.dtype in (torch.float16, torch.float32)  # ONNX Runtime's CPU has no bf16 Mul
        and compute == torch.float32
        and eps_placement == "inside"
        and partial >= 1.0
        and scale_offset == 0.0
        and bias is None
        and dims == list(range(rank - len(dims), rank))
        and (weight is None or weight.dtype == x.dtype)
        and (before_scale or x.dtype == torch.float32)
    )


def native_rms_norm(x: Tensor, dims: List[int], weight: Optional[Tensor], eps: float) -> Tensor:
    """``F.rms_norm`` over the trailing ``dims``: exported as ``RMSNormalization``."""
    shape = [x.shape[d] for d in dims]
    return torch.nn.functional.rms_norm(x, shape, weight, eps)
