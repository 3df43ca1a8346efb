"""``rmsnorm verify``'s table: one row per runner and dtype, and a legend that says how
to read it (what was checked, what it was judged by, why counts differ).

A row adds up that runner's checks in that dtype: how many of each kind, whether all
passed, the largest relative error of its forward and cross-framework checks and the
``rtol`` that check was judged by, and the share of elements equal bit for bit (to the
reference, in half precision; to ours, on an upstream's row). A failure that has no
number (a crash, a wrong dtype) shows ``-``, never ``0.0e+00``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_KINDS = {"forward": "fwd", "gradients": "grad", "bits": "bits", "batch": "batch", "self": "self"}
_HALF = ("bfloat16", "float16")
_HEAD = ("runner", "dtype", "checks", "result", "worst rel", "rtol", "bit-exact")

LEGEND = """\
checks: per problem a runner takes: fwd = forward against the float64 reference, grad =
  gradients (runners with autograd only), "vs X" = this backend's output against backend
  X's, bits = an upstream's output against ours, batch = the same rows computed in batches
  of 1, 7, 64 and 320 rows, bit for bit (a runtime that compiles a kernel per shape,
  XLA and Inductor, may differ at batch 1: its rows count "varies", not failed), self =
  this runner's output against its backend's first runner (eager) bit for bit (a runtime
  with fused kernels of its own, e.g. ONNX Runtime, counts "varies" with the share). Counts
  differ by runner: export and ONNX Runtime runners have no gradients and take fewer
  cases (a case they cannot express is not applicable, never passed).
worst rel: the largest |y - ref| / |ref| of the row's forward and "vs" checks; each element
  must hold |y - ref| <= atol + rtol * |ref| with the rtol shown (atol 1e-5), the tolerance
  table's entry for the least precise dtype on the spec's path.
bit-exact: share of output elements equal bit for bit: to the reference in half precision
  (at least 98% required: a rounding at the wrong point changes about a quarter), to
  ours on an upstream's "=" row (100% required)."""


def _kind(check: str) -> str:
    return _KINDS.get(check, check)  # "vs torch" stays itself


def _checks(rows: Sequence[Any]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[_kind(r.check)] = counts.get(_kind(r.check), 0) + 1
    return " + ".join(f"{n} {kind}" for kind, n in counts.items())


def _worst(rows: Sequence[Any]) -> tuple[str, str]:
    """(worst rel, its rtol) over forward and cross checks with a number."""
    numbered = [
        r
        for r in rows
        if r.check not in ("gradients", "bits") and r.max_rel is not None and r.tolerance
    ]
    if not numbered:
        return "-", "exact" if any(r.check == "bits" for r in rows) else "-"
    worst = max(numbered, key=lambda r: r.max_rel / r.tolerance["rtol"])
    rel = "inf" if math.isinf(worst.max_rel) else f"{worst.max_rel:.1e}"
    return rel, f"{worst.tolerance['rtol']:.1e}"


def _bit_exact(rows: Sequence[Any], dtype: str) -> str:
    shares = [
        r.bit_share
        for r in rows
        if r.bit_share is not None and r.check not in ("batch", "self")
        and (r.check == "bits" or dtype in _HALF)
    ]
    return f"{min(shares):.2%}" if shares else "-"


def summary(records: Sequence[Any]) -> str:
    """The table (see the module docstring), then the legend."""
    cells: dict[tuple[str, str], list] = {}
    for r in records:
        cells.setdefault((r.backend, r.dtype), []).append(r)
    runners = list(dict.fromkeys(r.backend for r in records))
    dtypes = ["float32", "bfloat16", "float16", "float64", "*"]
    order = sorted(cells, key=lambda k: (dtypes.index(k[1]), runners.index(k[0])))
    lines = []
    for runner, dtype in order:
        rows = cells[(runner, dtype)]
        if dtype == "*":  # a skipped backend
            lines.append((runner, "-", "-", "skipped", rows[0].reason, "", ""))
            continue
        failed = sum(r.status == "fail" for r in rows)
        varies = sum(r.status == "varies" for r in rows)
        result = "PASS" if not failed else f"FAIL {failed}"
        result += f" ({varies} varies)" if varies else ""
        rel, rtol = _worst(rows)
        lines.append((runner, dtype, _checks(rows), result, rel, rtol, _bit_exact(rows, dtype)))
    widths = [max(len(str(x[i])) for x in [_HEAD, *lines]) for i in range(len(_HEAD))]
    text = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [_HEAD, *lines]
    ]
    return "\n".join(text) + "\n\n" + LEGEND
