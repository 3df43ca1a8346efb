"""The Flax backend as core sees it: verify runners and msgpack params files.

Registered in ``pyproject.toml`` under ``rmsnorm_bridge.backends``; core finds
it through that entry point and never imports this package by name.
"""

from __future__ import annotations

from rmsnorm_core.backends import Backend, CheckpointFormat

from ._benchmarks import benchmarks, sweeps
from ._msgpack import read_layers, save_msgpack
from ._verify_runners import runners

BACKEND = Backend(
    name="flax",
    runners=tuple(runners()),
    formats=(CheckpointFormat("flax", (".msgpack",), "flax", read_layers, save_msgpack),),
    benchmarks=benchmarks,
    sweeps=sweeps,
)
