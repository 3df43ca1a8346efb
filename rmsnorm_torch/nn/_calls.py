"""A module's eager calls, resolved once: the plan cache behind ``RMSNorm.forward``.

A call's plan (``_resolve.py``) depends on the input's dtype, rank and device
and on the parameters' dtypes, never on the sizes of the other dims; every
check that depends only on those runs once, when the plan is built. Per call,
only the input's normalized sizes are checked. The cache lives on the module
and is replaced whenever the spec is set or the parameters move or change
dtype (``_apply``: ``to``, ``half``, ``cuda``); pickles and deep copies start
with an empty one.

For specs over negative (trailing) axes, the fused op's entries
(``_fused.py``) are kept per input dtype alone, so the hot path reads one
dict entry: a trailing block is trailing at every rank, and what the entry
assumed of the call (a CPU tensor, the weight's dtype, the size limit) is
checked per call by the module.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from rmsnorm_torch.kernels._fused import FusedKind, fused_kind
from rmsnorm_torch.kernels._kernel_choice import _CHOICE as KERNEL_CHOICE
from rmsnorm_torch.kernels._kernel_choice import FUSED_LIMIT
from rmsnorm_torch.nn._resolve import Plan, resolve

FusedCall = Tuple[List[int], float, Optional[torch.dtype], FusedKind, Plan]
"""A fused entry: the normalized sizes, eps, the weight dtype it was resolved for,
the ``_fused`` kind and the plan."""

__all__ = ["FUSED_LIMIT", "KERNEL_CHOICE", "CallCache"]


class CallCache:
    """The resolved plans of one module (module docstring).

    Attributes:
        fused: input dtype -> the fused call, for trailing specs on the CPU.
        plans: (x dtype, rank, device, weight dtype, bias dtype) -> the plan.
    """

    def __init__(self) -> None:
        self.fused: Dict[torch.dtype, FusedCall] = {}
        self.plans: Dict[Tuple[Any, ...], Plan] = {}

    def plan(
        self, module: Any, x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]
    ) -> Optional[Plan]:
        """The call's plan after the per-call checks; None when this call built a fused
        entry that takes it (the caller then retries the fused op)."""
        key = (
            x.dtype,
            x.dim(),
            x.device,
            None if weight is None else weight.dtype,
            None if bias is None else bias.dtype,
        )
        plan = self.plans.get(key)
        if plan is not None:
            sizes = module._sizes
            for i, d in enumerate(plan.dims):  # the rank is the key's: only sizes can differ
                if x.shape[d] != sizes[i]:
                    module._check_input(x)  # raises, naming the shapes
            return plan
        module._check_input(x)
        plan = resolve(module._recipe_for(x), x, weight, bias, x.dtype)
        self.plans[key] = plan
        kind = fused_kind(x, plan, weight, bias)
        if (
            kind == FusedKind.UNFIT
            or x.dtype in self.fused
            or any(a >= 0 for a in module._recipe.axes)
        ):
            return plan
        shape = [int(x.shape[d]) for d in plan.dims]
        wdtype = None if weight is None else weight.dtype
        self.fused[x.dtype] = (shape, plan.eps, wdtype, kind, plan)
        return None if type(x) is Tensor and x.numel() < FUSED_LIMIT else plan
