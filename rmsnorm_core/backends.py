"""The public backend interface: what a framework package offers core.

A framework package declares one :class:`Backend` (its verify runners, the
checkpoint formats ``rmsnorm convert`` can read and write through it, the
artifacts ``rmsnorm export`` can build with it, its benchmarks) and names it
in its ``pyproject.toml``; a third backend is a new package plus this line::

    [project.entry-points."rmsnorm_bridge.backends"]
    mybackend = "mybackend._plugin:BACKEND"

Core never imports a backend package. :func:`backends` loads the entry points
once, on first use: ``rmsnorm spec`` imports no framework, ``rmsnorm
verify`` imports all. An entry point that fails to load, or whose
``Backend.requires`` (its framework) is not installed, is listed by
:func:`unavailable` with the reason, and
``rmsnorm verify`` reports it as skipped, never as passed.
:func:`register_backend` adds a backend in-process (tests, notebooks).
:func:`lazy` and :func:`lazy_exports` let a backend declare everything without
importing its framework: it is imported when a command uses it.
:func:`install_command` names the one command that installs missing packages
(the extras that hold them), for every message that asks for one.
:func:`launch` runs a module as local processes (for multi-process runners
and tests), bounded in time.
"""

from rmsnorm_core._install import install_command
from rmsnorm_core._lazy import lazy, lazy_exports
from rmsnorm_core.bench._bench import Benchmark, Sweep
from rmsnorm_core.bench._bench_gpu import GpuCase, Timed, Unavailable
from rmsnorm_core.bench._bench_gpu import groups as gpu_groups
from rmsnorm_core.parity._launch import Launch, free_port, launch
from rmsnorm_core.registry._artifact_paths import artifact_path
from rmsnorm_core.registry._backends import (
    ENTRY_POINT_GROUP,
    Backend,
    NotApplicable,
    Runner,
    backends,
    missing_modules,
    register_backend,
    runners,
    unavailable,
    unregister_backend,
)
from rmsnorm_core.registry._capabilities import Artifact, CheckpointFormat, Exporter

__all__ = [
    "ENTRY_POINT_GROUP",
    "Launch",
    "free_port",
    "launch",
    "lazy",
    "lazy_exports",
    "Artifact",
    "artifact_path",
    "install_command",
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
    "missing_modules",
    "unavailable",
    "unregister_backend",
]
