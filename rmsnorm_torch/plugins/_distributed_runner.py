"""The ``torch-dtensor-2procs`` runner: core's problems on a 2-process gloo DTensor mesh.

One launch (``rmsnorm_core.parity._launch``) runs every problem it is given: each
process joins a ``gloo`` group on 127.0.0.1, shards ``x`` (and the residual)
across a 1-D mesh of both processes, runs ``RMSNorm`` / ``ResidualRMSNorm`` and
its backward, and rank 0 writes the gathered outputs and gradients. The layout
is the hard one where it exists: a normalized dim split across the ranks (one
all-reduce of a per-row scalar), else the first batch dim.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from typing import Any, List

import torch

from rmsnorm_core import canonical_axes, param_shape
from rmsnorm_core.testing import Outcome, Problem, launch_problems, serve_problems
from rmsnorm_torch.interop._bridge import to_numpy, to_tensor
from rmsnorm_torch.nn._modules import RMSNorm
from rmsnorm_torch.nn._residual_module import ResidualRMSNorm

WORLD = 2


def init_group() -> Any:
    """Join the launch's gloo group and return a 1-D CPU device mesh over it."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    rank, world = int(os.environ["RMSNORM_RANK"]), int(os.environ["RMSNORM_WORLD"])
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{os.environ['RMSNORM_PORT']}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=120),
    )
    return init_device_mesh("cpu", (world,))


def shard_dim(p: Problem) -> int:
    """The dim ``x`` is split along: the last normalized dim if it divides evenly, else 0."""
    dims = canonical_axes(p.spec.axes, p.x.ndim)
    return dims[-1] if p.x.shape[dims[-1]] % WORLD == 0 and p.spec.partial >= 1.0 else 0


def run_problem(mesh: Any, p: Problem) -> Outcome:
    """Run ``p`` with ``x`` sharded by :func:`shard_dim`; gathered results as NumPy."""
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    d = shard_dim(p)
    layout = [Shard(d)]
    module = (ResidualRMSNorm if p.residual is not None else RMSNorm).from_spec(
        p.spec, param_shape(p.spec, p.x.shape)
    )
    dims = canonical_axes(p.spec.axes, p.x.ndim)
    for name, value in (("weight", p.scale), ("bias", p.bias)):
        if value is not None:
            # a parameter is sharded like x's normalized dim when x is split along it
            placement = [Shard(dims.index(d))] if d in dims else [Replicate()]
            tensor = distribute_tensor(to_tensor(value), mesh, placement)
            setattr(module, name, torch.nn.Parameter(tensor))
    x = distribute_tensor(to_tensor(p.x), mesh, layout).requires_grad_(True)
    if p.residual is not None:
        y, s = module(x, distribute_tensor(to_tensor(p.residual), mesh, layout))
    else:
        y, s = module(x), None
    y.backward(distribute_tensor(to_tensor(p.dy), mesh, layout))
    grads = [None if t is None else t.grad for t in (x, module.weight, module.bias)]
    full = [None if g is None else to_numpy(g.full_tensor()) for g in grads]
    return Outcome(
        to_numpy(y.full_tensor()), None if s is None else to_numpy(s.full_tensor()), tuple(full)
    )  # type: ignore[arg-type]


def run_all(problems: List[Problem]) -> List[Outcome]:
    """Every problem in one 2-process launch (the runner's batch entry point)."""
    return launch_problems(__name__, problems, world=WORLD)


def main() -> None:
    import sys

    mesh = init_group()
    serve_problems(sys.argv[1], functools.partial(run_problem, mesh))
    torch.distributed.destroy_process_group()
    # Everything is written. Leave without C++ static destructors: at interpreter exit
    # a gloo thread still joinable aborted the rank ("terminate called without an
    # active exception", exit -6) in about half the launches here, results written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
