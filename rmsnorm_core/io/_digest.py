"""One digest of arrays, for every writer that lets a reader tell damage from data.

Neither safetensors nor Orbax keeps a checksum of array data; the neutral checkpoint,
Orbax checkpoints written by ``rmsnorm convert`` and ``rmsnorm verify``'s report (to tell
runs apart bit for bit) record this digest beside what they write.
"""

from __future__ import annotations

import hashlib

import numpy as np


def array_digest(*arrays: np.ndarray | None) -> str:
    """SHA-256 (hex) over each array's dtype, shape and bytes, None counting as absent:
    equal digests, equal arrays bit for bit."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{list(a.shape)};".encode())
        h.update(a.tobytes())
    return h.hexdigest()
