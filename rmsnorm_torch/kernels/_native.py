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
No global switch: ``export_onnx`` exports a copy of the module whose norms
carry ``onnx_native=True`` (an attribute of that copy only), so eager calls,
other exports and ``torch.compile`` in any thread never see it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from rmsnorm_torch.kernels._resolve import Plan


def native_eligible(
    x: Tensor, plan: Plan, weight: Optional[Tensor], bias: Optional[Tensor]
) -> bool:
    """Whether ``RMSNormalization`` equals the spec for this call (module docstring)."""
    return (
        x.dtype == plan.in_dtype
        and plan.mid == plan.in_dtype
        and x.dtype in (torch.float16, torch.float32)  # ONNX Runtime's CPU has no bf16 Mul
        and plan.compute == torch.float32
        and not plan.eps_outside
        and plan.k < 0
        and plan.scale_offset == 0.0
        and not plan.scale_inverse
        and bias is None
        and plan.trailing
        and (weight is None or weight.dtype == x.dtype)
        and (plan.before_scale or x.dtype == torch.float32)
    )


def native_rms_norm(x: Tensor, plan: Plan, weight: Optional[Tensor]) -> Tensor:
    """``F.rms_norm`` over the trailing ``dims``: exported as ``RMSNormalization``."""
    shape = [x.shape[d] for d in plan.dims]
    return torch.nn.functional.rms_norm(x, shape, weight, plan.eps)
