"""Suite-wide set-up: hypothesis profiles and the shared case tables' path.

``RMSNORM_FUZZ=long`` selects the long fuzzing profile; the default ``ci``
profile keeps the README's test command under ten minutes.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("RMSNORM_FUZZ", "ci"))
