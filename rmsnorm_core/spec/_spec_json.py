"""The spec's JSON layout: reading ``RMSNormSpec.to_dict`` output and JSON text back.

Every check a file's spec goes through before the constructor validates its
fields: a JSON object, a known schema version, known keys, bounded nesting.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rmsnorm_core.spec._errors import RMSNormError, RMSNormTypeError
from rmsnorm_core.spec._json import loads_strict

SCHEMA_VERSION = 2
"""Version of the JSON layout written by :meth:`RMSNormSpec.to_dict` (2 added
``scale_multiplies``; version-1 data, without it, reads as ``"normalized"``)."""


def spec_from_dict(cls: Any, data: Any) -> Any:
    """``cls(**data)`` after the layout's checks (``RMSNormSpec.from_dict``)."""
    if not isinstance(data, dict):
        raise RMSNormTypeError(f"spec data must be a JSON object (dict), got {type(data).__name__}")
    data = dict(data)
    version = data.pop("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RMSNormError(
            f"schema_version={version!r} is not accepted; expected an int "
            f"between 1 and {SCHEMA_VERSION}"
        )
    if version > SCHEMA_VERSION:
        raise RMSNormError(
            f"schema_version={version} is newer than this library reads "
            f"(up to {SCHEMA_VERSION}); upgrade rmsnorm-bridge"
        )
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise RMSNormError(
            f"unknown spec key(s) {unknown}; accepted keys are {['schema_version', *known]}"
        )
    return cls(**data)


def parse_json(text: Any) -> Any:
    """The JSON value of spec text (``RMSNormSpec.from_json``), errors as one line (a key
    given twice and over-long integers refused: :func:`~rmsnorm_core.spec._json.loads_strict`)."""
    if not isinstance(text, (str, bytes, bytearray)):
        raise RMSNormTypeError(f"spec JSON must be str or bytes, got {type(text).__name__}")
    return loads_strict(text, "spec JSON")
