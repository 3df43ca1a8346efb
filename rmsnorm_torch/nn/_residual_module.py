"""``ResidualRMSNorm``: the residual variant of :class:`RMSNorm`, one module."""

# No "from __future__ import annotations": TorchScript reads the annotations as types.

from typing import Tuple

import torch
from torch import Tensor

from rmsnorm_torch.nn._arguments import check_tensor
from rmsnorm_torch.nn._functional import norm_residual
from rmsnorm_torch.nn._modules import RMSNorm


class ResidualRMSNorm(RMSNorm):
    """``forward(x, residual) -> (y, s)``: ``s = x + residual``, ``y = norm(s)``.

    Same arguments as :class:`RMSNorm`; ``spec.residual_dtype="float32"``
    keeps ``s`` in float32 (flash-attn's ``residual_in_fp32``). Fused equals
    unfused: ``y`` is computed from the stored ``s``.
    """

    def forward(self, x: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        """Return ``(y, s)``."""
        self._check_input(x)
        if not torch.jit.is_scripting():
            check_tensor("residual", residual)
        recipe = self._recipe_for(x)
        return norm_residual(x, residual, recipe, self.weight, self.bias, self._onnx_mode)
