"""The public backend interface (see :mod:`rmsnorm_core._backends` for the contract).

A framework package declares one :class:`Backend` (its verify runners, the
checkpoint formats ``rmsnorm convert`` can read and write through it, the
artifacts ``rmsnorm export`` can build with it) and registers it under the
``rmsnorm_bridge.backends`` entry-point group; a third backend is a new
package plus one entry-point line.
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

__all__ = [
    "ENTRY_POINT_GROUP",
    "Artifact",
    "Backend",
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
