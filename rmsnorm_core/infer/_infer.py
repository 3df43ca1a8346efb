"""Infer the spec of any RMSNorm implementation by probing it, then verify the answer.

The framework-neutral half of each backend's ``infer_spec`` (the backend
wraps its module or function as an :class:`Implementation`: a NumPy callable
plus access to its parameters). :func:`infer_spec` identifies, by probing and
never by class name: the normalized axes, a mean-centring (a LayerNorm is
refused, named), the scale offset (``1 + w``), bias, eps and its placement,
a partial statistic, a half-precision statistic, the output dtype rule, and
the cast order. A scale or bias the output does not depend on is refused,
named. Then it verifies: the inferred spec must reproduce the implementation
on random parameters (set, and restored after) under the tolerance table, and
with the table's bit-for-bit share where the output is rounded to a half
dtype, the same bar as every backend (that is what tells Llama's cast order
from Gemma's), in float32, bfloat16 and float16, on Gaussian rows, rows where
eps matters, rows with one dominant element, tiny and huge rows, and calls of
several batch sizes (see :mod:`rmsnorm_core.infer._infer_verify`). If no spec
does, it raises :class:`RMSNormError` saying what it found.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np

from rmsnorm_core.infer import _infer_probes as probes
from rmsnorm_core.infer._infer_order import scale_order
from rmsnorm_core.infer._infer_verify import verify
from rmsnorm_core.infer._report import check_block
from rmsnorm_core.spec._dtypes import dtype_name
from rmsnorm_core.spec._errors import RMSNormError
from rmsnorm_core.spec._spec import RMSNormSpec


@dataclasses.dataclass(frozen=True)
class Implementation:
    """An RMSNorm implementation as NumPy, for :func:`infer_spec`.

    Attributes:
        apply: ``x -> y`` on NumPy arrays (bfloat16 as ml_dtypes), in the
            implementation's own computation; it may raise for inputs it refuses.
        block: the shape of the normalized block (the parameters' shape).
        params: the current ``{"scale": ..., "bias": ...}`` (the ones it has).
        set_params: sets some of them (same shapes and dtypes).
        recast: ``dtype -> `` a copy of the implementation with its parameters in that
            dtype (a module cast with ``.to``), or None where there is none (a function).
    """

    apply: Callable[[np.ndarray], np.ndarray]
    block: tuple[int, ...]
    params: Mapping[str, np.ndarray]
    set_params: Callable[[Mapping[str, np.ndarray]], None]
    recast: Callable[[str], Implementation] | None = None


def infer_spec(impl: Implementation) -> RMSNormSpec:
    """The spec ``impl`` computes, verified; its parameters are restored afterwards.

    Raises:
        RMSNormError: what it found, when it is not an RMSNorm any spec describes
            (a LayerNorm, a norm over other rows, a rounding no spec has).
    """
    check_block(impl.block)
    saved = {k: np.array(v, copy=True) for k, v in impl.params.items()}
    try:
        return _infer(impl, saved)
    finally:
        impl.set_params(saved)


def _infer(impl: Implementation, saved: Mapping[str, np.ndarray]) -> RMSNormSpec:
    layout = probes.find_layout(impl.apply, impl.block)
    scale, bias = saved.get("scale"), saved.get("bias")
    pdt = dtype_name((scale if scale is not None else bias).dtype) if saved else "float32"
    if bias is not None:
        impl.set_params({"bias": np.zeros_like(bias)})
    offset = 0.0
    if scale is not None:
        offset = _offset(impl, layout, scale)
        impl.set_params({"scale": probes.neutral_gain(offset, scale.shape, scale.dtype)})
    if bias is not None:
        _check_used(impl, layout, "bias", np.zeros_like(bias), np.full_like(bias, 0.5))
    if probes.mean_centred(impl.apply, layout):
        raise RMSNormError(
            "mean-centred: the output does not change when a constant is added to a row; this "
            "is a LayerNorm, not an RMSNorm"
        )
    eps, placement = probes.measure_eps(impl.apply, layout)
    k = probes.prefix_count(impl.apply, layout)
    found = {
        "axes": layout.axes,
        "eps": eps,
        "eps_placement": placement,
        "param_dtype": pdt,
        "use_scale": scale is not None,
        "scale_offset": offset,
        "use_bias": bias is not None,
        "partial": 1.0 if k == layout.n else k / layout.n,
        "compute_dtype": "input" if probes.half_statistic(impl.apply, layout) else "float32",
    }
    if scale is not None and placement == "inside" and found["compute_dtype"] == "float32":
        found["scale_multiplies"] = scale_order(impl.apply, impl.set_params, layout, offset, scale)
    # float32 weights can leave several specs equal (see _tell_apart); otherwise the
    # first that fits is the answer and the rest are not tried
    ambiguous = pdt == "float32" and scale is not None and impl.recast is not None
    failures, fits = [], []
    for cast_order in ("after_scale", "before_scale"):
        if cast_order == "before_scale" and found.get("scale_multiplies") == "inverse":
            continue  # the order is read off float32 outputs, where only after_scale has it
        for output_dtype in ("input", "promote", "param"):
            spec = RMSNormSpec(**found, cast_order=cast_order, output_dtype=output_dtype)
            reason = verify(impl.apply, impl.set_params, spec, layout, saved)
            if reason is None and not ambiguous:
                return spec
            if reason is None:
                fits.append(spec)
            else:
                failures.append(f"{cast_order}/{output_dtype}: {reason}")
    if fits:
        return _tell_apart(impl, fits, layout)
    raise RMSNormError(
        f"no spec reproduces this implementation. Found: {found}; then {'; '.join(failures)}"
        + _hint(found)
    )


def _tell_apart(
    impl: Implementation, fits: list[RMSNormSpec], layout: probes.Layout
) -> RMSNormSpec:
    """The first spec that reproduces ``impl``, and, where several do, the first that also
    reproduces it with bfloat16 parameters. With float32 weights, T5's "round to the
    weight's dtype" (``before_scale``, ``output_dtype="param"``) and a promoting norm
    (``after_scale``, ``"promote"``) give the same bits; cast to bfloat16 they differ, and
    a copy cast so tells which one a model keeps being after ``model.to(bfloat16)``."""
    if len(fits) == 1 or impl.recast is None:
        return fits[0]
    half = impl.recast("bfloat16")
    saved = {k: np.array(v, copy=True) for k, v in half.params.items()}
    for spec in fits:
        as_half = spec.replace(param_dtype="bfloat16")
        if verify(half.apply, half.set_params, as_half, layout, saved) is None:
            return spec
    return fits[0]  # none holds after a cast: the first describes the module as it is


def _offset(impl: Implementation, layout: probes.Layout, scale: np.ndarray) -> float:
    """``g = offset + w``: outputs at ``w = 0`` and ``w = 1`` give ``offset / (offset + 1)``."""
    row = np.random.default_rng(2).standard_normal((1, layout.n))
    x = probes.rows_of(layout, row, "float32")
    outs = []
    for value in (0.0, 1.0):
        impl.set_params({"scale": np.full(scale.shape, value).astype(scale.dtype)})
        outs.append(layout.rows(impl.apply(x)).astype(np.float64).reshape(-1)[: layout.n])
    y0, y1 = outs
    if np.array_equal(y0, y1, equal_nan=True):
        raise _unused("scale", 0.0, 1.0)
    if np.allclose(y0, 0.0, atol=1e-6):
        return 0.0
    step = y1 - y0
    moved = step != 0
    ratio = float(np.median(y0[moved] / step[moved]))
    if not np.isfinite(ratio):  # a NaN or Inf output under a plain row: no offset to read
        raise RMSNormError(
            f"the scale offset could not be measured: the output at scale 0 and 1 gives "
            f"the ratio {ratio}; an RMSNorm gives offset / (offset + 1), a finite number"
        )
    return round(ratio) if abs(ratio - round(ratio)) < 1e-3 else float(f"{ratio:.4g}")


def _check_used(
    impl: Implementation, layout: probes.Layout, name: str, a: np.ndarray, b: np.ndarray
) -> None:
    """Refuse a parameter whose values ``a`` and ``b`` give the same output (``a`` is left set)."""
    row = np.random.default_rng(3).standard_normal((1, layout.n))
    x = probes.rows_of(layout, row, "float32")
    outs = []
    for value in (b, a):
        impl.set_params({name: value})
        outs.append(np.asarray(impl.apply(x)))
    if np.array_equal(outs[0], outs[1], equal_nan=True):
        raise _unused(name, float(a.reshape(-1)[0]), float(b.reshape(-1)[0]))


def _unused(name: str, a: float, b: float) -> RMSNormError:
    return RMSNormError(
        f"its {name} parameter is unused: the output is the same with every element of it "
        f"{a:g} and {b:g}; an RMSNorm's {name} changes its output (leave it out: "
        f"a norm without a {name})"
    )


def _hint(found: Mapping[str, object]) -> str:
    if found.get("scale_offset"):
        return (
            ". An offset that fails only in half precision is usually formed in that precision "
            "(e.g. (1 + w) in bfloat16); the spec forms g = offset + w in float32"
        )
    return ""
