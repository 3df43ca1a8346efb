"""The public backend interface (see :mod:`rmsnorm_core._backends` for the contract).

A framework package declares one :class:`Backend` (its verify runners, the
checkpoint formats ``rmsnorm convert`` can read and write through it, the
artifacts ``rmsnorm export`` can build with it) and registers it under the
``rmsnorm_bridge.backends`` entry-point group; a third backend is a new
package plus one entry-point line. :func:`launch` runs a module as local
processes (for multi-process runners and tests), bounded in time.
"""

from ._backends import (
    ENTRY_POINT_GROUP,
    Artifact,
    Backend,
    CheckpointFormat,
    Exporter,
    NotApplicable,
    Runner,
    backends,
    register_backend,
    runners,
    unavailable,
    unregister_backend,
)
from ._bench import Benchmark, Sweep
from ._bench_gpu import GpuCase, Timed, Unavailable
from ._bench_gpu import groups as gpu_groups
from ._launch import Launch, free_port, launch

__all__ = [
    "ENTRY_POINT_GROUP",
    "Launch",
    "free_port",
    "launch",
    "Artifact",
    "Backend",
    "Benchmark",
    "GpuCase",
    "gpu_groups",
    "Sweep",
    "Timed",
    "Unavailable",
    "CheckpointFormat",
    "Exporter",
    "NotApplicable",
    "Runner",
    "backends",
    "register_backend",
    "runners",
    "unavailable",
    "unregister_backend",
]
