"""``ResidualRMSNorm``: the residual variant of :class:`RMSNorm`, one module."""

# No "from __future__ import annotations": TorchScript reads the annotations as types.

from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_core import RMSNormSpec
from rmsnorm_torch.nn._arguments import check_tensor, refuse_complex
from rmsnorm_torch.nn._functional import norm_residual
from rmsnorm_torch.nn._module_fields import _ShapeLike
from rmsnorm_torch.nn._modules import RMSNorm
from rmsnorm_torch.nn._traced import fx_call, traced_residual


class ResidualRMSNorm(RMSNorm):
    """``forward(x, residual) -> (y, s)``: ``s = x + residual``, ``y = norm(s)``.

    Same arguments as :class:`RMSNorm`, real parameters only (a complex ``dtype`` is
    refused when built, a parameter made complex later by its call: the residual sum has
    no complex rule); ``spec.residual_dtype="float32"`` keeps ``s`` in float32
    (flash-attn's ``residual_in_fp32``). Fused equals unfused: ``y`` is computed from the
    stored ``s``. Under ``torch.fx.symbolic_trace`` it is a leaf module (one
    ``call_module`` node whose output unpacks to ``(y, s)``), and as the traced root one
    ``call_function`` (``_traced.py``).

    Raises:
        rmsnorm_core.RMSNormTypeError: a complex ``dtype``; and as :class:`RMSNorm`.
    """

    def __init__(
        self,
        normalized_shape: _ShapeLike,
        eps: Optional[float] = None,
        elementwise_affine: bool = True,
        device: Any = None,
        dtype: Optional[torch.dtype] = None,
        *,
        bias: bool = False,
        spec: Optional[RMSNormSpec] = None,
    ) -> None:
        refuse_complex("dtype", dtype)
        super().__init__(
            normalized_shape, eps, elementwise_affine, device, dtype, bias=bias, spec=spec
        )

    def forward(self, x: Tensor, residual: Tensor) -> Tuple[Tensor, Tensor]:  # type: ignore[override]
        """Return ``(y, s)``."""
        if not torch.jit.is_scripting():
            # before any parameter is read: a read under torch.fx's tracer is a get_attr node
            if isinstance(x, torch.fx.Proxy) or isinstance(residual, torch.fx.Proxy):
                return fx_call(self, (x, residual), traced_residual)
        weight = self.weight
        bias = self.bias
        if not torch.jit.is_scripting():
            refuse_complex("weight.dtype", None if weight is None else weight.dtype)
            refuse_complex("bias.dtype", None if bias is None else bias.dtype)
        self._check_input(x)
        if not torch.jit.is_scripting():
            check_tensor("residual", residual)
        recipe = self._recipe_for(x)
        return norm_residual(x, residual, recipe, weight, bias, self._onnx_mode)
