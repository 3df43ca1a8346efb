"""``rmsnorm verify --report``'s JSON document, and the reading of older versions.

``docs/reference/verify-report.md`` documents every field; a test holds that page to
:class:`~rmsnorm_core.verify._records.Record` and :func:`report_doc`.

Versions: 1 (no digests), 2 (tolerance entry, bit share and digest per record; the
key ``backend`` held runner names, skipped backends were records), 3 (``backend`` and
``runner`` apart, ``against``, ``ratio``, a bit share only where a floor judged it,
``seconds`` once per runner call, skips in their own list with an install command).
:func:`upgrade_record` reads a version 1 or 2 record under version 3's names, so
``--baseline`` compares a new run with an old report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rmsnorm_core.oracle._tolerance import ROUNDING_AGREEMENT, TOLERANCES

REPORT_VERSION = 3
"""The version :func:`report_doc` writes (see the module docstring)."""


def report_doc(
    records: Sequence[Any],
    skipped: Sequence[Any],
    *,
    versions: dict[str, str],
    seconds: float,
    jobs: int,
    calls: int,
    not_applicable: int,
) -> dict[str, Any]:
    """The JSON document of a run (records and skips are dataclasses)."""
    return {
        "report_version": REPORT_VERSION,
        "versions": versions,
        "seconds": seconds,
        "jobs": jobs,
        "calls": calls,
        "not_applicable": not_applicable,
        "counts": {s: sum(r.status == s for r in records) for s in ("pass", "fail", "varies")},
        "skipped": [dataclasses.asdict(s) for s in skipped],
        "tolerances": {k: dataclasses.asdict(t) for k, t in TOLERANCES.items()},
        "rounding_agreement": ROUNDING_AGREEMENT,
        "records": [dataclasses.asdict(r) for r in records],
    }


def upgrade_record(record: Any, version: Any) -> Any:
    """A record of a report of ``version`` under version 3's names (a copy); a record
    of version 3 or later, or one that is not a JSON object, is returned as it is (the
    caller validates it). A version 2 ``skipped`` record becomes None (skips are not
    checks)."""
    old = isinstance(version, int) and not isinstance(version, bool) and version < 3
    if not old or not isinstance(record, dict) or "runner" in record:
        return record
    r = dict(record)
    if r.get("status") == "skipped":
        return None
    label, check = r.get("backend"), r.get("check")
    if not isinstance(label, str) or not isinstance(check, str):
        return record
    if check == "bits":  # "torch = hf-llama": upstream-hf-llama against torch's own
        backend, _, upstream = label.partition(" = ")
        r.update(backend=backend, runner=f"upstream-{upstream}", against=backend)
    elif check.startswith("vs "):  # version 2 named both sides by backend
        r.update(backend=label, runner=label, check="cross", against=check[3:])
    else:
        r.update(backend=None, runner=label, against="reference")
    return r


def upgrade(doc: dict) -> dict:
    """``doc`` (a parsed report) with its records under version 3's names."""
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        return doc
    version = doc.get("report_version", 1)
    records = [upgrade_record(r, version) for r in doc["records"]]
    return {**doc, "records": [r for r in records if r is not None]}
