"""Suite-wide set-up: hypothesis profiles, the shared case tables' path, the
``registered`` fixture (a backend registered for one test), and the native CPU
operator built in the background from the session's start.

``RMSNORM_FUZZ=long`` selects the long fuzzing profile and every row of the wide
parametrized sweeps (``_sweep.sweep``); the default ``ci`` profile and each sweep's
representative rows keep the README's test command under ten minutes.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
from _sweep import FUZZ
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(FUZZ)


@pytest.fixture
def registered():
    """``registered(backend)`` registers a backend for this test; it is unregistered after."""
    from rmsnorm_core.backends import register_backend, unregister_backend

    names = []

    def add(backend):
        register_backend(backend)
        names.append(backend.name)

    yield add
    for name in names:
        unregister_backend(name)


_PREBUILD = "from rmsnorm_torch.kernels._cpu_op import status; status()"
_BUILDER = pytest.StashKey[subprocess.Popen]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the native CPU operator in a process of its own while the first tests run.

    On a machine whose extension folder is empty (CI's) the first test that calls the
    operator in each worker builds it (about 30 s here) or, in the other worker, waits for
    that build's lock: one worker idle for the build's length. Started here, by the
    controlling process only, the build overlaps the tests, and each worker's first call
    finds it built or being built (the same build, through the same function a user's
    first call runs). Where torch or a compiler is missing the process fails quietly and
    the tests that need the operator say so themselves."""
    if hasattr(session.config, "workerinput") or os.environ.get("RMSNORM_NATIVE") == "0":
        return
    if importlib.util.find_spec("torch") is None:
        return
    session.config.stash[_BUILDER] = subprocess.Popen(
        [sys.executable, "-c", _PREBUILD],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Wait for the background build where it still runs (a run of a few tests on a
    fresh machine): killing it would throw the build away, and the next run would start
    it again."""
    builder = session.config.stash.get(_BUILDER, None)
    if builder is not None:
        builder.wait()
