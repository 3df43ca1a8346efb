"""DTensor inputs (tensor / sequence parallel): which path is correct, and the fast one.

Decisions, by the placements of ``x`` on each mesh dimension:

- ``Shard(d)`` of a batch or sequence dim, or ``Replicate()``: every rank holds
  whole normalized blocks, so the layer runs on the local shards (the blocked
  kernel where it applies) with no communication, and the output keeps
  ``x``'s placements. The parameters must then be replicated (a plain tensor
  or ``Replicate()``); their gradient is marked ``Partial()`` on the mesh
  dims where ``x`` is sharded, so DTensor sums it across the shards (what
  Megatron-style sequence parallelism needs).
- ``Shard(d)`` of a normalized dim (a row-parallel projection without its
  reduce-scatter): the graph path runs op by op on the DTensor; the mean of
  squares reduces over the sharded dim as one all-reduce of a per-row
  scalar, never of ``x`` (the weight sharded like ``x``'s normalized dim, or
  replicated). A partial statistic (``partial < 1``) is refused then: the
  first ``k`` elements of a block split across ranks are not local.
- ``Partial()``: refused with an error naming the placement. A partial sum
  is almost always a missing reduce-scatter; normalizing it silently would
  hide that (and cost an all-reduce of the whole tensor).
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import torch
from torch import Tensor

from rmsnorm_core import RMSNormError
from rmsnorm_core.rules import Recipe
from rmsnorm_torch.kernels._resolve import Plan


def _dtensor_class() -> Any:
    if not torch.distributed.is_available():
        return None
    from torch.distributed.tensor import DTensor

    return DTensor


def any_dtensor(*tensors: Optional[Tensor]) -> bool:
    """Whether any of ``tensors`` is a DTensor (plain tensors answer without a lookup)."""
    cls = None
    for t in tensors:
        if t is None or type(t) is Tensor or type(t) is torch.nn.Parameter:
            continue
        if cls is None:
            cls = _dtensor_class()
        if cls is not None and isinstance(t, cls):
            return True
    return False


def _replicated(t: Optional[Tensor]) -> bool:
    cls = _dtensor_class()
    return t is None or not isinstance(t, cls) or all(p.is_replicate() for p in t.placements)


def dtensor_norm(
    x: Tensor,
    recipe: Recipe,
    plan: Plan,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    run_local: Callable[[Tensor, Optional[Tensor], Optional[Tensor]], Tensor],
) -> Optional[Tensor]:
    """The local run for whole blocks (module docstring), None for the op-by-op graph path.

    Raises:
        RMSNormError: a ``Partial()`` input, or a partial statistic over a sharded block.
    """
    cls = _dtensor_class()
    if not isinstance(x, cls):
        return None  # a plain x with DTensor parameters: DTensor's own rules decide
    from torch.distributed.tensor import DTensor, Partial, Replicate

    sharded: List[int] = []
    for mesh_dim, placement in enumerate(x.placements):
        if placement.is_partial():
            raise RMSNormError(
                f"x has placement {placement} on mesh dim {mesh_dim}; a Partial() input is not "
                "accepted: reduce it first (e.g. x.redistribute(placements=[Shard(1)]) for "
                "sequence parallelism, or Replicate())"
            )
        if placement.is_shard():
            sharded.append(placement.dim % x.dim())
    if any(d % x.dim() in [p % x.dim() for p in plan.dims] for d in sharded):
        if recipe.partial < 1.0:
            raise RMSNormError(
                f"partial={recipe.partial} with x sharded along a normalized dim "
                f"(placements {tuple(x.placements)}) is not supported: the first k elements of "
                "a block split across ranks are not local; use partial=1.0 or replicate that dim"
            )
        return None
    if not (_replicated(weight) and _replicated(bias)):
        return None
    grads = [Partial() if p.is_shard() else Replicate() for p in x.placements]

    def local(p: Optional[Tensor]) -> Optional[Tensor]:
        if p is None or not isinstance(p, DTensor):
            return p
        return p.to_local(grad_placements=grads)

    y = run_local(x.to_local(), local(weight), local(bias))
    return DTensor.from_local(
        y, x.device_mesh, x.placements, run_check=False, shape=x.shape, stride=_contiguous(x.shape)
    )


def _contiguous(shape: torch.Size) -> tuple:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))
