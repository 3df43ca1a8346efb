"""Argument parsing shared by the ``rmsnorm`` subcommands."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rmsnorm_core.spec._errors import RMSNormUsageError

#: Longest ``--set`` value read (no spec field needs more).
MAX_VALUE = 256


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as a dict; VALUE is read as JSON, else as a string.

    Raises:
        RMSNormUsageError: an item without ``=``.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep:
            raise RMSNormUsageError(f"--set {item[:80]!r} is not accepted; expected FIELD=VALUE")
        if len(value) > MAX_VALUE:
            raise RMSNormUsageError(
                f"--set {field[:40]}=... is not accepted; the value has {len(value)} characters "
                f"(at most {MAX_VALUE})"
            )
        try:
            overrides[field] = json.loads(value)
        except RecursionError:
            raise RMSNormUsageError(f"--set {field[:40]}: the value is nested too deeply") from None
        except ValueError:  # not JSON (or an integer too long to convert): a plain string
            overrides[field] = value
    return overrides
