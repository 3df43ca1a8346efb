"""Suite-wide set-up: hypothesis profiles, the shared case tables' path, and the
``registered`` fixture (a backend registered for one test).

``RMSNORM_FUZZ=long`` selects the long fuzzing profile and every row of the wide
parametrized sweeps (``_sweep.sweep``); the default ``ci`` profile and each sweep's
representative rows keep the README's test command under ten minutes.
"""

from __future__ import annotations

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
