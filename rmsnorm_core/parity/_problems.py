"""Sample problems, runner outcomes and the one parity check (``rmsnorm_core.testing``).

A backend turns a :class:`Problem` into its own arrays, runs it, converts the
results back to NumPy; :func:`check_forward` and :func:`check_gradients`
compare them with the float64 reference under the tolerance table keyed by
the dtype plan, and, where the last rounding is to a half dtype, demand the
bit-for-bit agreement that exposes a cast-order slip (see
``ROUNDING_AGREEMENT``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rmsnorm_core.oracle._reference import rms_norm, rms_norm_residual, rms_norm_vjp
from rmsnorm_core.oracle._tolerance import ROUNDING_AGREEMENT, compare, rounding_agreement
from rmsnorm_core.spec._dtypes import dtype_name, numpy_dtype
from rmsnorm_core.spec._plan import dtype_plan, param_shape
from rmsnorm_core.spec._spec import RMSNormSpec


@dataclasses.dataclass(frozen=True)
class Problem:
    """One sample: spec, input, parameters, a cotangent and (for the residual
    variant) a residual, as NumPy arrays.

    Attributes:
        spec: the spec the sample is normalized under.
        x: the input, in the dtype under test.
        scale: the scale in ``spec.param_dtype``, or None without ``use_scale``.
        bias: the bias likewise, or None without ``use_bias``.
        dy: the cotangent of the output, in the output's dtype.
        residual: the residual added to ``x`` (residual variant), else None.
        batches: leading-dim sizes ``k`` at which ``x[:k]`` is also run, each as a call
            of its own, for the batch-invariance check (``_batches.py``); empty: none.
    """

    spec: RMSNormSpec
    x: np.ndarray
    scale: np.ndarray | None
    bias: np.ndarray | None
    dy: np.ndarray
    residual: np.ndarray | None = None
    batches: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a runner returns for a :class:`Problem`, as NumPy arrays.

    Attributes:
        y: the output.
        s: the stored residual sum (residual problems only).
        grads: ``(dx, dscale, dbias)`` for the cotangent ``problem.dy``, None
            where the runner has no gradients (e.g. an exported artifact);
            an element is None where the problem has no such parameter.
        batch_ys: the outputs of ``x[:k]`` for each ``k`` of ``problem.batches``, each
            computed by a call of its own (empty: the runner left them to
            ``rmsnorm verify``, which then runs each prefix as a problem).
    """

    y: np.ndarray
    s: np.ndarray | None = None
    grads: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None] | None = None
    batch_ys: tuple[np.ndarray, ...] = ()


@dataclasses.dataclass(frozen=True)
class Check:
    """The outcome of one comparison with the reference.

    Attributes:
        passed: within the tolerance table (and, in half precision, the
            rounding-agreement floor).
        max_abs: the largest absolute error.
        max_rel: the largest relative error.
        reason: why it failed, in words; empty when it passed.
        key: the tolerance table's entry it was judged by (None: not compared,
            e.g. a wrong dtype).
        bit_share: the share of output elements equal to the reference bit for
            bit (forward checks).
        bit_share_required: the floor ``bit_share`` was judged by
            (``ROUNDING_AGREEMENT`` where the last rounding is to a half dtype),
            None where no floor applies.
        ratio: the worst element's error as a fraction of its tolerance
            (``Comparison.ratio``; at most 1 within tolerance), None if not compared.
    """

    passed: bool
    max_abs: float
    max_rel: float
    reason: str = ""
    key: str | None = None
    bit_share: float | None = None
    bit_share_required: float | None = None
    ratio: float | None = None


def make_problem(
    spec: RMSNormSpec,
    dtype: str,
    shape: tuple[int, ...],
    *,
    seed: int = 0,
    residual: bool = False,
    batches: tuple[int, ...] = (),
) -> Problem:
    """Random inputs of ``dtype`` (|x| ~ 3), parameters around 1 in ``spec.param_dtype``;
    ``batches``: see :class:`Problem`."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3.0).astype(numpy_dtype(dtype))
    pshape = param_shape(spec, shape)
    pdt = numpy_dtype(spec.param_dtype)
    scale = None
    if spec.use_scale:
        scale = (rng.uniform(0.5, 1.5, pshape) - spec.scale_offset).astype(pdt)
    bias = rng.uniform(-0.5, 0.5, pshape).astype(pdt) if spec.use_bias else None
    dy = rng.standard_normal(shape).astype(numpy_dtype(dtype_plan(spec, dtype).output))
    res = rng.standard_normal(shape).astype(numpy_dtype(dtype)) if residual else None
    return Problem(spec, x, scale, bias, dy, res, tuple(batches))


def expected_forward(p: Problem) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference ``y`` (and the residual sum ``s`` for a residual problem)."""
    if p.residual is not None:
        return rms_norm_residual(p.x, p.residual, p.spec, p.scale, p.bias)
    return rms_norm(p.x, p.spec, p.scale, p.bias), None


def _plan(p: Problem):
    return dtype_plan(p.spec, p.x.dtype, None if p.scale is None else p.scale.dtype)


def check_forward(p: Problem, y: np.ndarray, s: np.ndarray | None = None) -> Check:
    """Compare a backend's output (and residual sum) with the reference."""
    expected, expected_s = expected_forward(p)
    y = np.asarray(y)
    if y.dtype != expected.dtype:
        return Check(
            False, float("inf"), float("inf"), f"dtype {y.dtype} != spec's {expected.dtype}"
        )
    plan = _plan(p)
    key = plan.precision
    result = compare(y, expected, key)
    agreement = rounding_agreement(y, expected)
    # Bit-for-bit agreement is meaningful where the last rounding is to a half
    # dtype (a float32 output carries float32 arithmetic-order differences).
    judged = plan.output in ("bfloat16", "float16") and plan.compute != plan.input
    floor = ROUNDING_AGREEMENT if judged and y.size >= 256 else None
    numbers = dict(key=key, bit_share=agreement, bit_share_required=floor, ratio=result.ratio)
    if not result.passed:
        return Check(False, result.max_abs, result.max_rel, result.reason, **numbers)
    if floor is not None and agreement < floor:
        return Check(
            False,
            result.max_abs,
            result.max_rel,
            f"only {agreement:.1%} of elements equal the reference bit for bit; "
            "the backend rounds at other points than the spec (cast_order="
            f"{p.spec.cast_order!r}?)",
            **numbers,
        )
    if expected_s is not None and (
        s is None
        or not np.array_equal(np.asarray(s).astype(np.float64), expected_s.astype(np.float64))
    ):
        return Check(
            False,
            result.max_abs,
            result.max_rel,
            "residual sum differs from x + residual",
            **numbers,
        )
    return Check(True, result.max_abs, result.max_rel, "", **numbers)


def _narrowest(key: str, dtype: np.dtype) -> str:
    bits = {"bfloat16": 8, "float16": 11, "float32": 24, "float64": 53}
    name = dtype_name(dtype)
    return name if bits.get(name, 53) < bits[key] else key


def check_gradients(
    p: Problem, dx: np.ndarray, dscale: np.ndarray | None, dbias: np.ndarray | None
) -> Check:
    """Compare gradients with the reference's analytic VJP (gradient tolerance)."""
    # The residual variant normalizes the stored sum s; d/dx equals d/ds.
    at = expected_forward(p)[1] if p.residual is not None else p.x
    ex, escale, ebias = rms_norm_vjp(at, p.dy.astype(np.float64), p.spec, p.scale, p.bias)
    key = _plan(p).gradient_precision
    worst_abs = worst_rel = ratio = 0.0
    for label, got, want in (("dx", dx, ex), ("dscale", dscale, escale), ("dbias", dbias, ebias)):
        if (got is None) != (want is None):
            return Check(False, float("inf"), float("inf"), f"{label}: presence differs")
        if want is None:
            continue
        # a parameter's gradient is stored in the parameter's dtype: a bfloat16 weight
        # carries bfloat16 rounding however precise the input
        got_key = key if label == "dx" else _narrowest(key, np.asarray(got).dtype)
        result = compare(np.asarray(got), want, got_key, gradient=True)
        worst_abs, worst_rel = max(worst_abs, result.max_abs), max(worst_rel, result.max_rel)
        ratio = max(ratio, result.ratio)
        if not result.passed:
            return Check(False, worst_abs, worst_rel, f"{label}: {result.reason}", key, ratio=ratio)
    return Check(True, worst_abs, worst_rel, "", key, ratio=ratio)


def _same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a).astype(np.float64), np.asarray(b).astype(np.float64)
    return (a == b) | (np.isnan(a) & np.isnan(b))


def check_batches(p: Problem, outcome: Outcome) -> Check:
    """Batch invariance (``_batches.py``): each prefix's output against the full call's
    first rows, bit for bit; ``bit_share`` is the share of identical elements over every
    prefix."""
    if len(outcome.batch_ys) != len(p.batches):
        got = len(outcome.batch_ys)
        return Check(False, float("inf"), float("inf"),
                     f"{got} batch outputs for batch sizes {list(p.batches)}")  # fmt: skip
    same = total = 0
    worst = ""
    for k, y in zip(p.batches, outcome.batch_ys, strict=True):
        full = np.asarray(outcome.y)[:k]
        if np.asarray(y).shape != full.shape or np.asarray(y).dtype != full.dtype:
            return Check(False, float("inf"), float("inf"),
                         f"batch {k}: {np.asarray(y).dtype}{list(np.shape(y))}, full call's "
                         f"rows {full.dtype}{list(full.shape)}")  # fmt: skip
        equal = _same_bits(y, full)
        same, total = same + int(equal.sum()), total + equal.size
        if not worst and not equal.all():
            rows = int((~equal).reshape(k, -1).any(axis=1).sum())
            worst = f"batch {k}: {rows} of {k} rows differ from the same rows in a batch of "
            worst += f"{len(outcome.y)}"
    share = same / total if total else 1.0
    return Check(not worst, 0.0, 0.0, worst, None, share, bit_share_required=1.0)


def check_outcome(p: Problem, outcome: Outcome) -> list[tuple[str, Check]]:
    """``[("forward", check), ("gradients", check), ("batch", check)]``; gradients only
    where present, batch only for a problem with ``batches``."""
    checks = [("forward", check_forward(p, outcome.y, outcome.s))]
    if outcome.grads is not None:
        checks.append(("gradients", check_gradients(p, *outcome.grads)))
    if p.batches:
        checks.append(("batch", check_batches(p, outcome)))
    return checks


def upstream_takes(p: Problem, preset: str) -> bool:
    """Whether ``p`` is a call the upstream of ``preset`` makes as it stands: the
    preset with any eps (axes, dtypes, offset and parameters its own), a scale, no
    bias, no residual. Upstream runners (``Runner.upstream``) raise
    ``NotApplicable`` for the rest."""
    base = RMSNormSpec.preset(preset)
    return (
        p.residual is None
        and p.bias is None
        and p.scale is not None
        and p.spec.replace(eps=base.eps) == base
    )
