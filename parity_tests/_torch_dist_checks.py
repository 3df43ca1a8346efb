"""torch.distributed checks, run by ``test_distributed.py`` as 2 gloo processes.

Each check runs on every rank and raises on a mismatch; ``python
_torch_dist_checks.py NAME...`` runs the named checks (``rmsnorm_core.backends.launch``
sets the rank, world size and port).
"""

from __future__ import annotations

import sys

import torch
from torch.distributed.tensor import Partial, Replicate, Shard, distribute_tensor
from torch.distributed.tensor.debug import CommDebugMode

from rmsnorm_core import RMSNormError, RMSNormSpec, compare, dtype_plan
from rmsnorm_torch import ResidualRMSNorm, RMSNorm
from rmsnorm_torch.plugins._distributed_runner import init_group

MESH = init_group()
RANK = torch.distributed.get_rank()
SPEC = RMSNormSpec.preset("llama", param_dtype="float32")


def _close(got, want, key, name, gradient=False):
    result = compare(
        got.detach().float().numpy(), want.detach().float().numpy(), key, gradient=gradient
    )
    assert result.passed, f"rank {RANK} {name}: {result.reason}"


def _plain(shape, dtype, seed):
    torch.manual_seed(seed)
    x = (torch.randn(shape) * 3).to(dtype)
    m = RMSNorm.from_spec(SPEC, shape[-1])
    with torch.no_grad():
        m.weight.uniform_(0.5, 1.5)
    return x, m


def check_layouts() -> None:
    """Forward, dx, dweight against the unsharded layer; the collectives each layout costs."""
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for shape in ((4, 6, 64), (16, 40, 64)):  # graph-path size, blocked-kernel size
            x, m = _plain(shape, dtype, seed=len(shape))
            dy = torch.randn(shape).to(dtype)
            xr = x.clone().requires_grad_(True)
            y_ref = m(xr)
            y_ref.backward(dy)
            plan = dtype_plan(SPEC, str(dtype).split(".")[-1])
            for layout, w_layout, comms in (
                ([Shard(0)], [Replicate()], {}),
                ([Shard(1)], [Replicate()], {}),
                ([Replicate()], [Replicate()], {}),
                ([Shard(2)], [Shard(0)], {"all_reduce": 1}),
            ):
                dm = RMSNorm.from_spec(SPEC, shape[-1])
                dm.weight = torch.nn.Parameter(
                    distribute_tensor(m.weight.detach().clone(), MESH, w_layout)
                )
                dx = distribute_tensor(x, MESH, layout).requires_grad_(True)
                with CommDebugMode() as comm:
                    y = dm(dx)
                counts = {str(k).split(".")[-1]: v for k, v in comm.get_comm_counts().items()}
                name = f"{dtype} {shape} {layout}"
                assert counts == comms, f"{name}: collectives {counts}, expected {comms}"
                assert tuple(y.placements) == tuple(layout), f"{name}: output {y.placements}"
                _close(y.full_tensor(), y_ref.detach(), plan.precision, name)
                y.backward(distribute_tensor(dy, MESH, layout))
                _close(dx.grad.full_tensor(), xr.grad, plan.gradient_precision, name + " dx", True)
                _close(
                    dm.weight.grad.full_tensor(),
                    m.weight.grad,
                    plan.gradient_precision,
                    name + " dw",
                    True,
                )
            m.weight.grad = None


def check_residual_and_refusals() -> None:
    x, m = _plain((6, 40, 64), torch.bfloat16, seed=3)
    r = torch.randn(x.shape).to(torch.bfloat16)
    plain = ResidualRMSNorm.from_spec(SPEC.replace(residual_dtype="float32"), 64)
    plain.weight = m.weight
    y_ref, s_ref = plain(x, r)
    dm = ResidualRMSNorm.from_spec(SPEC.replace(residual_dtype="float32"), 64)
    dm.weight = torch.nn.Parameter(distribute_tensor(m.weight.detach(), MESH, [Replicate()]))
    y, s = dm(distribute_tensor(x, MESH, [Shard(1)]), distribute_tensor(r, MESH, [Shard(1)]))
    assert torch.equal(s.full_tensor(), s_ref) and s.dtype == torch.float32
    _close(y.full_tensor(), y_ref, "bfloat16", "residual")
    from torch.distributed.tensor import DTensor

    partial = DTensor.from_local(
        x.float() / 2, MESH, [Partial()]
    )  # what a row-parallel matmul gives
    try:
        RMSNorm.from_spec(SPEC, 64)(partial)
    except RMSNormError as err:
        assert "x has placement P(sum) on mesh dim 0; a Partial() input is not accepted" in str(
            err
        ), err
    else:
        raise AssertionError("a Partial() input was not refused")
    try:
        RMSNorm.from_spec(SPEC.replace(partial=0.5), 64)(distribute_tensor(x, MESH, [Shard(2)]))
    except RMSNormError as err:
        assert "partial=0.5 with x sharded along a normalized dim" in str(err), err
    else:
        raise AssertionError("a partial statistic over a sharded block was not refused")


CHECKS = {"layouts": check_layouts, "residual-and-refusals": check_residual_and_refusals}

if __name__ == "__main__":
    from _torch_dist_training import CHECKS as TRAINING

    CHECKS.update(TRAINING)
    for name in sys.argv[1:]:
        CHECKS[name]()
        print(f"PASS {name}", flush=True)
    torch.distributed.destroy_process_group()
