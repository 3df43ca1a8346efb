"""Argument parsing shared by the ``rmsnorm`` subcommands."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ._errors import RMSNormUsageError


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as a dict; VALUE is read as JSON, else as a string.

    Raises:
        RMSNormUsageError: an item without ``=``.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep:
            raise RMSNormUsageError(f"--set {item!r} is not accepted; expected FIELD=VALUE")
        try:
            overrides[field] = json.loads(value)
        except json.JSONDecodeError:
            overrides[field] = value
    return overrides
