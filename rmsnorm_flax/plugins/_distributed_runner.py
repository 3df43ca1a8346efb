"""The ``jax-2procs`` runner: core's problems across 2 JAX processes on this machine.

Flags, exactly (set before jax is imported, here by the launcher's
environment and :func:`init`): ``JAX_PLATFORMS=cpu``, ``JAX_NUM_CPU_DEVICES=1``
per process, ``jax.config.update("jax_cpu_collectives_implementation",
"gloo")``, then ``jax.distributed.initialize("127.0.0.1:PORT",
num_processes=2, process_id=RANK)``. The global mesh has one device per
process, axis ``"p"``.

Each problem runs the linen layer under ``jit`` on global arrays: with the
last normalized dim split over ``"p"`` inside ``shard_map`` (``axis_name="p"``:
one ``psum`` of a per-row scalar) where it divides evenly and the spec has no
partial statistic, else with a batch dim split by ``NamedSharding`` where
one divides, else replicated. Rank 0 writes the gathered results.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import numpy as np

from rmsnorm_core import canonical_axes
from rmsnorm_core.testing import Outcome, Problem, launch_problems, serve_problems

WORLD = 2
ENV = {"JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1"}


def init() -> Any:
    """Join the launch's processes; return the global 1-D mesh (axis ``"p"``)."""
    import jax
    from jax.sharding import Mesh

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    _gloo_on_loopback()
    jax.distributed.initialize(
        f"127.0.0.1:{os.environ['RMSNORM_PORT']}",
        num_processes=int(os.environ["RMSNORM_WORLD"]),
        process_id=int(os.environ["RMSNORM_RANK"]),
        initialization_timeout=120,
    )
    return Mesh(np.array(jax.devices()), ("p",))


def _gloo_on_loopback() -> None:
    """Bind gloo's collectives to 127.0.0.1, as the launch binds everything else.

    JAX creates them with no address, so gloo resolves the machine's hostname, which a
    container started with ``--network none`` cannot (``device.cc:99 rv == 0. -3 vs 0``).
    These ranks are ours (launched processes, never user code): the factory JAX calls
    gets the loopback hostname. Where jaxlib's factory lacks the argument, nothing
    changes."""
    from jax._src import xla_bridge

    make = xla_bridge._jax.make_gloo_tcp_collectives
    if "hostname" in (getattr(make, "__doc__", None) or ""):  # jaxlib's factory takes it
        xla_bridge._jax.make_gloo_tcp_collectives = functools.partial(make, hostname="127.0.0.1")


def layout(p: Problem) -> tuple[str, int | None]:
    """``("feature", dim)``, ``("batch", dim)`` or ``("replicated", None)``."""
    dims = canonical_axes(p.spec.axes, p.x.ndim)
    if p.x.shape[dims[-1]] % WORLD == 0 and p.spec.partial >= 1.0 and p.x.size:
        return "feature", dims[-1]
    for d in range(p.x.ndim):
        if d not in dims and p.x.shape[d] % WORLD == 0 and p.x.shape[d]:
            return "batch", d
    return "replicated", None


def global_array(mesh: Any, value: np.ndarray | None, spec: Any) -> Any:
    """A global jax.Array of ``value`` laid out by ``spec`` (each process gives its part)."""
    import jax
    from jax.sharding import NamedSharding

    if value is None:
        return None
    sharding = NamedSharding(mesh, spec)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def run_problem(mesh: Any, p: Problem) -> Outcome:
    """Forward and ``jax.vjp`` of the linen layer on the problem's layout; gathered to NumPy."""
    import jax
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    from jax.sharding import PartitionSpec as P

    from rmsnorm_flax import linen

    kind, d = layout(p)
    dims = canonical_axes(p.spec.axes, p.x.ndim)
    axis = "p" if kind == "feature" else None
    x_spec = P(*["p" if i == d else None for i in range(p.x.ndim)])
    par_spec = P(*["p" if kind == "feature" and dim == d else None for dim in dims])
    residual = p.residual is not None
    module = (linen.ResidualRMSNorm if residual else linen.RMSNorm)(spec=p.spec, axis_name=axis)

    def f(x, scale, bias, res):  # noqa: ANN001, ANN202
        params = {k: v for k, v in (("scale", scale), ("bias", bias)) if v is not None}
        args = (x, res) if residual else (x,)
        return module.apply({"params": params}, *args)

    if kind == "feature":
        out_spec = (x_spec, x_spec) if residual else x_spec
        f = jax.shard_map(
            f, mesh=mesh, in_specs=(x_spec, par_spec, par_spec, x_spec), out_specs=out_spec
        )
    x, res, dy = (global_array(mesh, a, x_spec) for a in (p.x, p.residual, p.dy))
    scale, bias = (global_array(mesh, a, par_spec) for a in (p.scale, p.bias))
    out, pull = jax.vjp(jax.jit(f), x, scale, bias, res)
    y, s = out if residual else (out, None)
    cot = (dy, jnp.zeros_like(s)) if residual else dy
    dx, dscale, dbias, _ = pull(cot)

    def host(a: Any) -> Any:
        return None if a is None else np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return Outcome(host(y), host(s), (host(dx), host(dscale), host(dbias)))


def run_all(problems: list[Problem]) -> list[Outcome]:
    """Every problem in one 2-process launch (the runner's batch entry point)."""
    return launch_problems(__name__, problems, world=WORLD, env=ENV)


def main() -> None:
    mesh = init()
    serve_problems(sys.argv[1], functools.partial(run_problem, mesh))


if __name__ == "__main__":
    main()
