"""``rmsnorm verify --baseline OLD.json``: this run against an earlier report, check by check.

The evaluation the Docker workflow is for: run the matrix on one version of the code
(or of torch, JAX, ONNX Runtime), keep its report, run it again on another, and see
what changed. A check is identified by its spec label and spec, case, dtype, shape,
runner and kind; for every check in both reports:

- **regression**: it passed before and fails now;
- **fixed**: it failed before and passes now;
- **error changed**: it fails in both, for another reason;
- **bits changed**: the output's digest differs (same status): the numbers moved,
  even where both are within tolerance. A report written before digests existed
  (``report_version`` 1) has none, and no bit change can be seen (said so).

Checks only one report has are counted and listed, not judged: narrowing a run with
``--backend`` or ``--preset`` leaves the others out on purpose. A report of version 1
or 2 named a cross-backend check by backend, not runner: those checks are among the
ones only one report has. The exit status is 1
on a regression, or on a bit change unless ``--allow-bit-changes``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rmsnorm_core.io._safetensors import read_regular
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._json import loads_strict
from rmsnorm_core.verify._report_json import upgrade

MAX_REPORT_BYTES = 256 * 1024 * 1024
"""A full report is about a megabyte; a larger --baseline is refused unread."""

KINDS = ("regression", "fixed", "error changed", "bits changed")


@dataclasses.dataclass
class Diff:
    """What changed between a baseline report and this run.

    Attributes:
        changes: ``{"kind", "check", "before", "after"}`` per changed check, where
            ``check`` names it and ``before`` / ``after`` hold status, reason and digest.
        only_before: checks in the baseline only; ``only_now``: in this run only.
        versions: ``{name: [before, after]}`` for each framework whose version differs.
        digests: whether both reports carry digests (else bit changes are unseen).
    """

    changes: list[dict]
    only_before: list[str]
    only_now: list[str]
    versions: dict[str, list[str]]
    digests: bool

    def count(self, kind: str) -> int:
        """How many changes of ``kind`` (one of :data:`KINDS`)."""
        return sum(c["kind"] == kind for c in self.changes)

    def failed(self, allow_bit_changes: bool) -> bool:
        """A regression, or a bit change that is not allowed."""
        return self.count("regression") > 0 or (
            not allow_bit_changes and self.count("bits changed") > 0
        )


#: The fields that name a check (a report's record has each; an older report's records
#: are read under these names, see ``_report_json.upgrade``).
NAMED_BY = ("runner", "check", "dtype", "spec", "case", "shape")

#: The ``report_version`` values this comparison reads (2 added digests).
READS = (1, 2, 3)


def _string(v: Any) -> bool:
    return isinstance(v, str)


def _shape(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in v
    )


def _digest(v: Any) -> bool:
    return v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{64}", v) is not None)


#: Every field of a record the comparison reads: required, its test, what is accepted.
RECORD_FIELDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    **{name: (True, _string, "a string") for name in NAMED_BY if name != "shape"},
    "shape": (True, _shape, "a list of ints >= 0"),
    "status": (
        True,
        lambda v: v in ("pass", "fail", "varies", "skipped"),
        "'pass', 'fail', 'varies' or 'skipped'",
    ),
    "reason": (False, _string, "a string"),
    "digest": (False, _digest, "null or a SHA-256 (64 hex digits)"),
    "spec_json": (False, lambda v: isinstance(v, dict), "a JSON object (the spec)"),
}


def _shown(value: Any) -> str:
    text = json.dumps(value, allow_nan=True)
    return text if len(text) <= 60 else text[:50] + "..."


def load_report(path: str | Path) -> dict:
    """An earlier ``--report``: a regular file of bounded size, JSON with records, every
    field this comparison reads checked (type and value) before the run starts; an
    older report's records are read under this version's field names first.

    Raises:
        RMSNormError: one line naming the file, the record, the field, the value and
            what is accepted.
    """
    where = f"--baseline {str(path)!r}"
    doc = loads_strict(read_regular(Path(path), "--baseline", MAX_REPORT_BYTES), where)
    doc = upgrade(doc)  # an older report's records under this version's field names
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise RMSNormError(f"{where} is not an rmsnorm verify report (no 'records' list)")
    version = doc.get("report_version", 1)
    if type(version) is not int or version not in READS:  # bool and float are not
        raise RMSNormError(
            f"{where} has report_version={_shown(version)}; accepted: "
            f"{' or '.join(map(str, READS))} (a newer report needs a newer rmsnorm-bridge)"
        )
    versions = doc.get("versions", {})
    if not (isinstance(versions, dict) and all(map(_string, versions.values()))):
        raise RMSNormError(
            f"{where} has versions={_shown(versions)}; accepted: a JSON object of strings"
        )
    for i, r in enumerate(doc["records"]):
        if not isinstance(r, dict):
            raise RMSNormError(f"{where}: record {i} is not a JSON object")
        for field, (required, accepts, what) in RECORD_FIELDS.items():
            if field not in r:
                if not required:
                    continue
                raise RMSNormError(
                    f"{where}: record {i} lacks {field!r}; accepted: records of an "
                    "rmsnorm verify --report"
                )
            if not accepts(r[field]):
                raise RMSNormError(
                    f"{where}: record {i} has {field}={_shown(r[field])}; accepted: {what}"
                )
    return doc


def _key(r: dict) -> str:
    """A check's name and its spec's fields: two specs of one label stay apart."""
    return f"{_name(r)} {json.dumps(r.get('spec_json', {}), sort_keys=True)}"


def _name(r: dict) -> str:
    return " ".join(str(r[k]) for k in NAMED_BY)


def _side(r: dict) -> dict:
    return {"status": r.get("status"), "reason": r.get("reason", ""), "digest": r.get("digest")}


def compare_reports(before: dict, records: Sequence[dict], versions: dict[str, str]) -> Diff:
    """The :class:`Diff` of this run's ``records`` (as written to a report) against
    ``before`` (a report as :func:`load_report` checked it)."""
    old = {_key(r): r for r in before["records"]}
    new = {_key(r): r for r in records}
    version = before.get("report_version", 1)  # 2 and later record digests
    digests = isinstance(version, int) and not isinstance(version, bool) and version >= 2
    changes = []
    for key in old.keys() & new.keys():
        a, b = old[key], new[key]
        kind = None
        held = ("pass", "varies")  # varies: a difference its runner declares, not a failure
        if a["status"] in held and b["status"] == "fail":
            kind = "regression"
        elif a["status"] == "fail" and b["status"] in held:
            kind = "fixed"
        elif a["status"] != b["status"] and {a["status"], b["status"]} == set(held):
            kind = "bits changed"  # identical before and not now, or the reverse
        elif a["status"] == b["status"] == "fail" and a.get("reason") != b.get("reason"):
            kind = "error changed"
        elif a.get("digest") and b.get("digest") and a["digest"].lower() != b["digest"].lower():
            kind = "bits changed"
        if kind is not None:
            changes.append({"kind": kind, "check": _name(b), "before": _side(a), "after": _side(b)})
    changes.sort(key=lambda c: (KINDS.index(c["kind"]), c["check"]))
    old_versions = before.get("versions", {}) if isinstance(before.get("versions"), dict) else {}
    moved = {
        k: [str(old_versions.get(k)), v] for k, v in versions.items() if old_versions.get(k, v) != v
    }
    return Diff(
        changes,
        sorted(_name(old[k]) for k in old.keys() - new.keys()),
        sorted(_name(new[k]) for k in new.keys() - old.keys()),
        moved,
        digests,
    )


def describe(diff: Diff, allow_bit_changes: bool, shown: int = 20) -> str:
    """The comparison as text: a count per kind, then the first ``shown`` changes."""
    lines = ["against the baseline:"]
    for kind in KINDS:
        note = ""
        if kind == "bits changed" and not diff.digests:
            note = " (the baseline has no digests: bit changes cannot be seen)"
        elif kind == "bits changed" and allow_bit_changes:
            note = " (allowed)"
        lines.append(f"  {kind:14s} {diff.count(kind)}{note}")
    lines.append(f"  {'only before':14s} {len(diff.only_before)}  (not judged)")
    lines.append(f"  {'only now':14s} {len(diff.only_now)}  (not judged)")
    for name, (was, now) in sorted(diff.versions.items()):
        lines.append(f"  version {name}: {was} -> {now}")
    for c in diff.changes[:shown]:
        was, now = c["before"], c["after"]
        what = f"{was['status']} -> {now['status']}"
        if c["kind"] == "error changed":
            what = f"{was['reason'][:80]!r} -> {now['reason'][:80]!r}"
        elif c["kind"] == "regression":
            what += f": {now['reason'][:120]}"
        lines.append(f"{c['kind'].upper()} {c['check']}: {what}")
    if len(diff.changes) > shown:
        lines.append(f"... and {len(diff.changes) - shown} more (the JSON diff has all)")
    return "\n".join(lines)


def as_json(diff: Diff) -> dict[str, Any]:
    """The JSON diff: counts, every change, the checks only one side has, versions."""
    return {
        "counts": {kind: diff.count(kind) for kind in KINDS},
        "digests_compared": diff.digests,
        "changes": diff.changes,
        "only_before": diff.only_before,
        "only_now": diff.only_now,
        "versions": diff.versions,
    }
