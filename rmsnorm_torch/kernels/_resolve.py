"""A compiled spec (core's ``Recipe``) resolved for one call: the kernels' one argument.

Every rule comes from ``rmsnorm_core.rules`` (canonical axes, partial count,
dtype plan, parameter checks), called here inside TorchScript as in eager
mode; this module only maps dtype names onto torch dtypes and checks what is
torch's own (devices). In eager mode errors are ``rmsnorm_core.RMSNormError``
(for two devices ``RMSNormDeviceError``, also torch's ``RuntimeError``); in a scripted
module TorchScript raises ``torch.jit.Error`` whose text ends in the error's class and
``: <the same message>``.
"""

from __future__ import annotations

from enum import Enum
from typing import List, NamedTuple, Optional

import torch
from torch import Tensor

from rmsnorm_core import RMSNormDeviceError, RMSNormTypeError
from rmsnorm_core import rules as _rules
from rmsnorm_core.rules import Recipe
from rmsnorm_torch.kernels._torch_dtypes import torch_dtype, torch_dtype_name


def _complex_too() -> str:
    """What ends the accepted dtypes in a dtype error: torch computes complex inputs (a
    function, not a constant: TorchScript reads no global str)."""
    return ", or complex64 and complex128 where the spec is torch's own arithmetic"


class OnnxExport(Enum):
    """How a module's ONNX export copy writes the norm (an enum TorchScript compiles).

    Attributes:
        OFF: not an export copy: eager, scripted and compiled calls.
        FUSABLE: the graph ONNX Runtime fuses into SimplifiedLayerNormalization.
        NATIVE: also the native ``RMSNormalization`` op (opset >= 23) where it
            equals the spec (``_native.py``).
    """

    OFF = 0
    FUSABLE = 1
    NATIVE = 2


class Plan(NamedTuple):
    """Everything a kernel needs for one call (the spec's fields, resolved).

    ``dims`` are the normalized axes, sorted: negative (counted from the end) where
    every spec axis is, so traced graphs stay right at every rank; else non-negative.
    ``k`` is core's ``block_count``: the partial count of the flattened block,
    -1 for "the whole block" (so a trace records no shape arithmetic); ``in_dtype`` is the
    dtype the spec's "input" rules refer to (``x``'s own, except in the
    residual variant, where it is the dtype of ``x`` before the sum); ``mid``: the dtype
    ``before_scale`` rounds ``h*inv`` to (core's ``DtypePlan.intermediate``: ``in_dtype``,
    or the parameters' dtype for ``output_dtype="param"``; the fused op and the native ONNX
    op round only to ``in_dtype`` and leave other calls to the rest); ``scale_inverse``:
    the spec's ``scale_multiplies="inverse"`` and a weight to fold into the inverse rms.
    ``split_dx``: T5's order (``before_scale`` with ``output_dtype="param"``) on a
    half-precision ``x``: ``x * rsqrt(...)`` multiplies ``x`` itself, promoted, and widens
    it for the statistic only, so autograd rounds the two partial gradients of ``x`` (the
    product's and the statistic's) to ``x``'s dtype and adds them there; the values are
    the same as with one widened copy (a widening is exact), the gradient rounds as
    Hugging Face's ``T5LayerNorm``'s does.
    """

    dims: List[int]
    trailing: bool
    k: int
    eps: float
    eps_outside: bool
    compute: torch.dtype
    scale: torch.dtype
    before_scale: bool
    in_dtype: torch.dtype
    out_dtype: torch.dtype
    mid: torch.dtype
    scale_offset: float
    scale_inverse: bool
    split_dx: bool


def _check_param(
    name: str,
    field: str,
    p: Optional[Tensor],
    used: bool,
    x: Tensor,
    dims: List[int],
    complex_ok: bool = False,
) -> str:
    """Check a parameter (complex too where ``complex_ok``); return its dtype name ("" when
    absent)."""
    if p is None:
        return ""
    if not used:
        _rules.check_unused(name, field)
    if not (complex_ok and _complex_input(p)):
        _rules.check_float(name, torch_dtype_name(p.dtype), _complex_too())
    if not torch.jit.is_tracing():  # a trace records ops, not these shape comparisons
        _rules.check_param_shape(name, list(p.shape), [x.shape[d] for d in dims])
    if p.device != x.device:
        raise RMSNormDeviceError(
            "{} is on device {} but x is on device {}; move the module or the input so that "
            "they share a device".format(name, p.device, x.device)
        )
    return torch_dtype_name(p.dtype)


@torch.jit.unused
def _traced_count(x: Tensor, dims: List[int], partial: float) -> int:
    """Under jit.trace the count is recorded as a constant of the traced block size
    (fixed by the normalized dims, which the weights fix); the tracer's warning
    about that is expected and silenced here."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        n = 1
        for d in dims:
            n *= int(x.shape[d])
        return _rules.block_count(partial, n)


def _count(x: Tensor, dims: List[int], partial: float) -> int:
    if partial >= 1.0:
        return _rules.block_count(partial, 0)  # -1, the whole block: no shape arithmetic
    if not torch.jit.is_scripting():
        if torch.jit.is_tracing():
            return _traced_count(x, dims, partial)
    n = 1
    for d in dims:
        n *= x.shape[d]
    return _rules.block_count(partial, n)


def _relative(dims: List[int], axes: List[int], rank: int) -> List[int]:
    """``dims`` counted from the end (``[-2, -1]``) where every spec axis is, so a traced
    or exported graph normalizes the same trailing block at any rank; else as they are."""
    for axis in axes:
        if axis >= 0:
            return dims
    out: List[int] = []
    for d in dims:
        out.append(d - rank)
    return out


def is_dim(i: int, dims: List[int], rank: int) -> bool:
    """Whether axis ``i`` (``0 <= i < rank``) is one of the plan's ``dims`` (either sign)."""
    for d in dims:
        if d == i or d + rank == i:
            return True
    return False


def _complex_input(x: Tensor) -> bool:
    return x.dtype == torch.complex64 or x.dtype == torch.complex128


def complex_unfit(recipe: Recipe) -> str:
    """Why a spec does not compute complex inputs or weights ("" when it does).

    torch computes complex64 and complex128 inputs (``torch.rms_norm``: ``x * rsqrt(mean(x^2)
    + eps) * w`` in the input's own complex dtype, ``x^2`` not ``|x|^2``), and a complex
    weight on a real input (``f(x) * rsqrt(mean(f(x)^2) + eps)`` in the real compute dtype
    ``f``, times ``w`` in the promoted complex dtype, cast to x's dtype: the real part, with
    torch's warning that the imaginary part is discarded), and so does every spec with its
    formula: eps inside the root, the whole block, ``cast_order="after_scale"``,
    ``output_dtype="input"``, no offset, ``scale_multiplies="normalized"``, no bias, compute
    ``"float32"`` or ``"input"`` (the ``torch`` and ``olmo2`` presets, the default spec), over
    any axes. The others cast or promote in ways that have no complex meaning (Llama's and
    T5's casts, Gemma's ``1 + w``, flax's promotion): refused.
    """
    if recipe.eps_outside:
        return "eps_placement='outside'"
    if recipe.partial < 1.0:
        return "partial={}".format(recipe.partial)
    if recipe.before_scale:
        return "cast_order='before_scale'"
    if recipe.promote_output:
        return "output_dtype='promote'"
    if recipe.param_output:
        return "output_dtype='param'"
    if recipe.scale_offset != 0.0:
        return "scale_offset={}".format(recipe.scale_offset)
    if recipe.scale_inverse:
        return "scale_multiplies='inverse'"
    if recipe.use_bias:
        return "use_bias=True"
    if recipe.compute_dtype == "float64":
        return "compute_dtype='float64'"
    return ""


def _complex_plan(
    recipe: Recipe,
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    in_dtype: torch.dtype,
) -> Plan:
    """The plan of a call with a complex64/complex128 input or weight: torch's arithmetic
    (``complex_unfit``). A complex input is computed in its own dtype; a real one in the
    spec's compute dtype, and its output, the promoted product's real part, in its own."""
    what = "input"
    dtype = x.dtype
    compute = x.dtype
    out = x.dtype
    if not _complex_input(x):
        _rules.check_float("x", torch_dtype_name(x.dtype))
        what = "weight"
        if weight is not None:
            dtype = weight.dtype
        compute = torch_dtype(_rules.resolve_dtypes(recipe, torch_dtype_name(in_dtype), "").compute)
        out = in_dtype
    reason = complex_unfit(recipe)
    if reason != "":
        raise RMSNormTypeError(
            "{} has dtype {}; a complex {} is computed as torch.rms_norm computes it, by a "
            "spec with its formula only (eps inside the root, the whole block, "
            "cast_order='after_scale', output_dtype='input', scale_offset=0, "
            "scale_multiplies='normalized', no bias, compute_dtype 'float32' or 'input'); "
            "this spec has {}".format(
                "x" if what == "input" else what, torch_dtype_name(dtype), what, reason
            )
        )
    dims = _rules.canonical_dims(recipe.axes, x.dim())
    _check_param("weight", "scale", weight, recipe.use_scale, x, dims, True)
    _check_param("bias", "bias", bias, recipe.use_bias, x, dims, True)
    scale = compute
    if weight is not None:
        scale = torch.promote_types(compute, weight.dtype)
    return Plan(
        _relative(dims, recipe.axes, x.dim()),
        _rules.is_trailing(dims, x.dim()),
        -1,
        recipe.eps,
        False,
        compute,
        scale,
        False,
        out,
        out,
        out,
        0.0,
        False,
        False,
    )


def resolve(
    recipe: Recipe,
    x: Tensor,
    weight: Optional[Tensor],
    bias: Optional[Tensor],
    in_dtype: torch.dtype,
) -> Plan:
    """Check ``x`` and the parameters against ``recipe``; return the call's plan."""
    if _complex_input(x) or (weight is not None and _complex_input(weight)):
        return _complex_plan(recipe, x, weight, bias, in_dtype)
    _rules.check_float("x", torch_dtype_name(x.dtype), _complex_too())
    dims = _rules.canonical_dims(recipe.axes, x.dim())
    w = _check_param("weight", "scale", weight, recipe.use_scale, x, dims)
    b = _check_param("bias", "bias", bias, recipe.use_bias, x, dims)
    params = w
    if b != "":
        params = b if params == "" else _rules.promote_pair(params, b)
    names = _rules.resolve_dtypes(recipe, torch_dtype_name(in_dtype), params)
    compute = torch_dtype(names.compute)
    mid = in_dtype  # before_scale's rounding point (TorchScript refines a local, not a field)
    intermediate = names.intermediate
    if intermediate is not None:
        mid = torch_dtype(intermediate)
    return Plan(
        _relative(dims, recipe.axes, x.dim()),
        _rules.is_trailing(dims, x.dim()),
        _count(x, dims, recipe.partial),
        recipe.eps,
        recipe.eps_outside,
        compute,
        torch_dtype(names.scale),
        recipe.before_scale,
        in_dtype,
        torch_dtype(names.output),
        mid,
        recipe.scale_offset,
        recipe.scale_inverse and weight is not None,
        recipe.before_scale
        and recipe.param_output
        and not recipe.eps_outside
        and not recipe.scale_inverse
        and compute == torch.float32
        and (x.dtype == torch.float16 or x.dtype == torch.bfloat16),
    )
