"""What ``replace_norms`` (torch and nnx) returns, and the probe bound both apply."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._spec import RMSNormSpec

PROBE_LIMIT = 1 << 20
"""The largest scale (elements) ``infer_spec`` and ``replace_norms`` probe: 1 Mi
covers every hidden size and per-head block in use; a head's [vocab, hidden]
weight (a Baichuan ``NormHead``, 16 MB and more) is refused before any probe
input is built."""


def check_probe_size(name: str, size: int, shape: tuple[int, ...]) -> None:
    """Refuse a parameter too large to be a norm's scale, before any probe runs.

    Raises:
        RMSNormError: naming the parameter, its size and shape, and the limit.
    """
    if size > PROBE_LIMIT:
        raise RMSNormError(
            f"its {name} has {size} elements (shape {shape}), more than a norm's scale "
            f"({PROBE_LIMIT} at most): not probed"
        )


def check_block(shape: tuple[int, ...], name: str = "normalized_shape") -> None:
    """Refuse a normalized block no probe can be built for: a dimension that is not a
    whole number >= 1, or more than :data:`PROBE_LIMIT` elements.

    Raises:
        RMSNormError: naming ``name``, the shape and what is accepted.
    """
    ok = all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in shape)
    if not shape or not ok or math.prod(shape) > PROBE_LIMIT:
        raise RMSNormError(
            f"{name}={tuple(shape)} is not accepted; expected whole numbers >= 1 with "
            f"{PROBE_LIMIT} elements at most in all (a norm's block)"
        )


class ReplaceReport(dict[str, RMSNormSpec]):
    """``{module path: spec}`` of what ``replace_norms`` replaced (a dict, as before), and
    why the other candidates were left in place.

    Attributes:
        skipped: ``{module path: reason}`` of candidates left in place.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


def replace_each(
    candidates: Iterable[tuple[str, Any, Callable[[Any], None]]],
    replacement: Callable[[Any], tuple[Any, RMSNormSpec] | str],
) -> ReplaceReport:
    """The loop both ``replace_norms`` share: for each ``(path, module, put)`` candidate,
    ``replacement(module)`` once per module object (a module shared at several paths
    gets one replacement, put at each), then ``put(new)`` and the spec recorded, or the
    reason it returned recorded in ``skipped``."""
    report = ReplaceReport()
    made: dict[int, tuple[Any, RMSNormSpec] | str] = {}
    for path, module, put in candidates:
        if id(module) not in made:
            made[id(module)] = replacement(module)
        outcome = made[id(module)]
        if isinstance(outcome, str):
            report.skipped[path] = outcome
            continue
        put(outcome[0])
        report[path] = outcome[1]
    return report
