"""``rmsnorm verify``'s table: one row per runner and dtype (and one per cross-backend
and per upstream bit comparison), the skipped runners with their install command, and a
legend.

Each column aggregates only the checks its rule judged: ``worst rel`` and ``rtol``
come from the forward and cross-backend checks, the worst by the ratio of error to
tolerance, with the table entry that judged it named; ``bit-exact`` is the smallest
share over the checks a bit-for-bit floor judged (half-precision outputs, upstream
bit rows), with how many it judged. A failure that has no number (a crash, a wrong
dtype) shows ``-``, never ``0.0e+00``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_KINDS = {"forward": "fwd", "gradients": "grad", "bits": "bits", "cross": "vs", "batch": "batch",
          "self": "self"}  # fmt: skip
_SHORT = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "float64": "f64"}
DTYPES = ("float32", "bfloat16", "float16", "float64")
_HEAD = ("runner", "dtype", "checks", "result", "worst rel", "rtol (entry)", "bit-exact (n)")
_SKIP_HEAD = ("skipped", "why", "install")

LEGEND = """\
checks: per problem a runner takes: fwd = forward against the float64 reference, grad =
  gradients (runners with autograd only); "R vs X" rows: vs = runner R's output against
  runner X's (the first runners of two backends); "U = B" rows: bits = upstream U's
  output against backend B's own (its first runner), bit for bit; batch = the same rows
  computed in batches of 1, 7, 64 and 320 rows, bit for bit; self = the runner's output
  against its backend's first runner (eager), bit for bit. A runtime that cannot hold a
  batch or self check declares why (XLA and Inductor compile a kernel per shape; Inductor,
  ONNX Runtime and flax nnx run kernels of their own): its differences count "varies"
  (the JSON report has the share), not failed. Export and ONNX Runtime runners take
  fewer cases (not applicable, never passed).
worst rel: the largest |y - ref| / |ref| of the row's fwd and vs checks, from the check
  nearest its tolerance: each element must hold |y - ref| <= atol + rtol * |ref|, with
  the rtol shown and the tolerance-table entry that judged it (f32 = float32, bf16,
  f16: the least precise dtype on the spec's path, so a bfloat16 input promoted to a
  float32 output is judged by f32).
bit-exact: the smallest share of output elements equal bit for bit, over the (n) checks
  a floor judged: fwd checks whose last rounding is to a half dtype (at least 98% of
  elements equal the reference; a rounding at the wrong point changes about a quarter),
  bits, batch and self checks (100% required; a check its runner declares may differ,
  "varies", shows its own share here too); n/a: no check of the row is judged by bits."""


def kind(r: Any) -> str:
    """How a record's check reads in the table: fwd, grad, vs or bits."""
    return _KINDS.get(r.check, r.check)


def _checks(rows: Sequence[Any]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[kind(r)] = counts.get(kind(r), 0) + 1
    return " + ".join(f"{n} {k}" for k, n in counts.items())


def worst(rows: Sequence[Any]) -> tuple[str, str]:
    """(worst rel, "rtol (entry)") over the forward and cross checks that have a number."""
    numbered = [
        r for r in rows if r.check in ("forward", "cross") and r.max_rel is not None and r.tolerance
    ]
    if not numbered:
        return "-", "exact" if any(r.check == "bits" for r in rows) else "-"
    top = max(numbered, key=lambda r: (r.ratio or 0.0, r.max_rel))
    rel = "inf" if math.isinf(top.max_rel) else f"{top.max_rel:.1e}"
    key = top.tolerance["key"]
    return rel, f"{top.tolerance['rtol']:.1e} {_SHORT.get(key, key)}"


def bit_exact(rows: Sequence[Any]) -> str:
    """The smallest judged bit share and how many checks a floor judged, or ``n/a``."""
    judged = [r for r in rows if r.bit_share_required is not None]
    shares = [r.bit_share for r in judged if r.bit_share is not None]
    if not judged:
        return "n/a"
    return f"{min(shares):.2%} ({len(judged)})" if shares else f"- ({len(judged)})"


def _columns(head: Sequence[str], lines: list[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    return [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [head, *lines]
    ]


def _row_key(r: Any) -> tuple[str, str]:
    if r.check == "bits":
        return f"{r.runner} = {r.backend}", r.dtype
    if r.check == "cross":
        return f"{r.runner} vs {r.against}", r.dtype
    return r.runner, r.dtype


def table(records: Sequence[Any]) -> str:
    """The runner x dtype table (see the module docstring)."""
    cells: dict[tuple[str, str], list] = {}
    for r in records:
        cells.setdefault(_row_key(r), []).append(r)
    order = list(dict.fromkeys(k[0] for k in cells))
    dtypes = [*DTYPES, *sorted({k[1] for k in cells} - set(DTYPES))]
    lines = []
    for label, dtype in sorted(cells, key=lambda k: (dtypes.index(k[1]), order.index(k[0]))):
        rows = cells[(label, dtype)]
        failed = sum(r.status == "fail" for r in rows)
        varies = sum(r.status == "varies" for r in rows)
        result = "PASS" if not failed else f"FAIL {failed}"
        result += f" ({varies} varies)" if varies else ""
        rel, rtol = worst(rows)
        lines.append((label, dtype, _checks(rows), result, rel, rtol, bit_exact(rows)))
    return "\n".join(_columns(_HEAD, lines))


def skipped_table(skipped: Sequence[Any]) -> str:
    """One row per skipped runner or backend: why, and the command that installs what
    it needs (``-`` where no install helps); empty when nothing was skipped."""
    if not skipped:
        return ""
    lines = [(s.name, s.why, s.install or "-") for s in skipped]
    return "\n".join(_columns(_SKIP_HEAD, lines))
