"""One digest of arrays, for every writer that lets a reader tell damage from data.

Neither safetensors nor Orbax keeps a checksum of array data; the neutral checkpoint,
Orbax checkpoints written by ``rmsnorm convert`` and ``rmsnorm verify``'s report (to tell
runs apart bit for bit) record this digest beside what they write; every loader checks
it with :func:`check_digests`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from rmsnorm_core.spec._errors import RMSNormError


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


_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def check_digests(where: str, digests: Any, arrays: Mapping[str, np.ndarray], kind: str) -> None:
    """Check every array against the digest written with it: the one check of every
    loader that reads a file carrying :func:`array_digest` digests.

    A file that carries digests carries one for every array it holds (an empty map
    included: then it holds none), and every one is checked: an array without a
    digest, a digest without an array, or a digest that is not 64 hex digits means
    the file was damaged or edited. Hex digits compare without regard to case.

    Args:
        where: names the file in an error, e.g. ``"checkpoint 'a.safetensors'"``.
        digests: ``{name: hex SHA-256}`` as read from the file (its type is checked).
        arrays: ``{name: array}``: every array read from the file.
        kind: what an array is called in that format (``"tensor"``, ``"array"``).

    Raises:
        RMSNormError: naming the file, the array and the problem.
    """
    if not isinstance(digests, Mapping):
        raise RMSNormError(
            f"{where}: the digests are a {type(digests).__name__}; expected a JSON object of "
            f"{kind} name to SHA-256 (64 hex digits)"
        )
    for name, value in digests.items():
        if not (isinstance(value, str) and _SHA256_HEX.fullmatch(value)):
            raise RMSNormError(
                f"{where}: the digest of {kind} {str(name)[:80]!r} is {repr(value)[:80]}; "
                "expected a SHA-256 (64 hex digits)"
            )
    missing = sorted(set(arrays) - set(digests))
    if missing:
        raise RMSNormError(
            f"{where}: {kind} {missing[0]!r} has no digest ({len(missing)} without); a file "
            f"that carries digests carries one for every {kind}: it was damaged or edited"
        )
    extra = sorted(set(digests) - set(arrays))
    if extra:
        raise RMSNormError(
            f"{where}: a digest names {kind} {extra[0]!r}, which the file does not hold "
            f"({len(extra)} such); it was damaged or edited"
        )
    for name in sorted(arrays):
        if array_digest(arrays[name]) != digests[name].lower():
            raise RMSNormError(
                f"{where}: {kind} {name!r} does not match the SHA-256 written with it; the file "
                "is damaged"
            )
