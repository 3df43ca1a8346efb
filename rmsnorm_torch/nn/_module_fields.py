"""The torch module's spec arguments: torch's constructor arguments -> one spec, and
the spec's fields as module attributes (assigning one replaces the spec)."""

# No "from __future__ import annotations": the module class reads these at import.

import dataclasses
import math
import numbers
from typing import Any, Optional, Sequence, Tuple, Union

import torch

from rmsnorm_core import (
    FLOAT32_EPS,
    FLOAT_DTYPES,
    RMSNormDtypeError,
    RMSNormError,
    RMSNormSpec,
    RMSNormTypeError,
    dtype_name,
)
from rmsnorm_core.spec._validation import require_eps
from rmsnorm_torch.kernels._torch_dtypes import real_dtype, torch_dtype
from rmsnorm_torch.nn._given import dtype_value, eps_is_bool, eps_value, flag_value

_ShapeLike = Union[int, Sequence[int], torch.Size]
MUTABLE_FIELDS = (
    "axes",
    "eps",
    "eps_placement",
    "compute_dtype",
    "cast_order",
    "output_dtype",
    "scale_offset",
    "partial",
    "residual_dtype",
    "scale_multiplies",
)
"""Spec fields assignable on a module (the rest shape its parameters)."""
STRUCTURAL = ("use_scale", "use_bias", "param_dtype")


def eps_outside_spec(eps: Any, compute_dtype: str = "float32") -> bool:
    """Whether ``eps`` is one torch computes and no spec holds: NaN, +inf or a negative
    number, -inf included (torch's own tests pass -0.5; a row whose mean square is below
    ``-eps`` then gives NaN), a positive number below the smallest normal of the spec's
    ``compute_dtype`` (``1e-39``: the spec refuses it as flushed to 0 by some backends), or a
    bool (torch computes 0 or 1; a spec refuses a bool as a likely mistake). A spec's eps
    stays one ``require_eps`` accepts: a spec is the portable description that checkpoints,
    exports and the other frameworks read, and none of them means anything by the others.
    So the module alone carries such an eps (``RMSNorm``'s ``_eps_override``), computes
    torch's result with it, and has no spec to give until eps is set to one a spec holds,
    or None. Any other form torch reads (a NumPy scalar, a
    0-dim tensor) is held by the spec as the float torch computes with (``eps_value``).

    Raises:
        rmsnorm_core.RMSNormTypeError: ``eps`` is no form torch reads (``eps_value``).
    """
    value = eps_value(eps)
    if value is None:
        return False
    if eps_is_bool(eps):
        return True
    try:
        require_eps(value, compute_dtype)  # the spec's own rule, whatever it refuses
    except RMSNormError:
        return True
    return False


def no_spec_reason(
    eps_given: Any,
    eps_override: Optional[float],
    weight: Optional[torch.Tensor],
    bias: Optional[torch.Tensor],
) -> str:
    """Why a module computes what torch.nn.RMSNorm computes but has no spec to give ("" when
    it has one): an eps outside every spec (:func:`eps_outside_spec`), or a complex parameter
    (a spec's ``param_dtype`` is real)."""
    done = "the module computes it as torch.nn.RMSNorm does but cannot give a spec to save, "
    if eps_override is not None:
        rule = "a finite float >= 0" + (", not a bool" if eps_is_bool(eps_given) else "")
        fix = "a finite value >= 0"
        if not eps_is_bool(eps_given) and 0 < eps_override < math.inf:
            rule = "0 or at least the compute dtype's smallest normal, which this one underflows"
            fix = "0, a value at least that normal,"
        return (
            f"eps={eps_given!r} has no spec (a spec's eps is {rule}): {done}"
            f"export or compare; set eps to {fix} or None"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.is_complex():
            return (
                f"{name} has dtype {p.dtype} and no spec holds it (a spec's param_dtype is "
                f"one of {', '.join(FLOAT_DTYPES)}): {done}export or compare"
            )
    return ""


def resolve_spec(
    shape: Tuple[int, ...],
    eps: Optional[float],
    elementwise_affine: bool,
    bias: bool,
    dtype: Optional[torch.dtype],
    spec: Optional[RMSNormSpec],
) -> RMSNormSpec:
    """Build the spec from torch's arguments (each in any form torch.nn.RMSNorm accepts:
    ``_given.py``), or check them against ``spec``, which takes eps as a real number only."""
    elementwise_affine = flag_value("elementwise_affine", elementwise_affine)
    bias = flag_value("bias", bias)
    dtype = dtype_value(dtype)
    # complex parameters (torch computes them) are recorded by their real dtype
    param_dtype = None if dtype is None else dtype_name(real_dtype(dtype))
    # torch raises a RuntimeError for an integer dtype (its weight cannot require a
    # gradient) and for a float8 one at the first call (no kernel computes it)
    if isinstance(dtype, torch.dtype) and param_dtype not in FLOAT_DTYPES:
        raise RMSNormDtypeError(
            f"dtype={dtype} is not accepted; the parameters' dtype is float16, bfloat16, "
            "float32 or float64 (complex64 or complex128 for complex parameters)"
        )
    if spec is None:
        value = eps_value(eps)
        return RMSNormSpec(
            axes=tuple(range(-len(shape), 0)),
            eps=FLOAT32_EPS if value is None or eps_outside_spec(eps) else value,
            use_scale=elementwise_affine,
            use_bias=bias,
            param_dtype=param_dtype or dtype_name(torch.get_default_dtype()),
        )
    if not isinstance(spec, RMSNormSpec):
        raise RMSNormTypeError(f"spec must be an RMSNormSpec, got {type(spec).__name__}")
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, numbers.Real)):
        raise RMSNormTypeError(
            f"eps={eps!r} is not accepted with spec=; eps must then be a real number equal to "
            "spec.eps, or None"
        )
    conflicts = []
    if eps is not None and float(eps) != spec.eps:
        conflicts.append(f"eps={eps!r} (spec.eps={spec.eps!r})")
    if not elementwise_affine and spec.use_scale:
        conflicts.append("elementwise_affine=False (spec.use_scale=True)")
    if bias and not spec.use_bias:
        conflicts.append("bias=True (spec.use_bias=False)")
    if param_dtype is not None and param_dtype != spec.param_dtype:
        conflicts.append(f"dtype={dtype} (spec.param_dtype={spec.param_dtype!r})")
    if conflicts:
        raise RMSNormError(
            f"{', '.join(conflicts)} conflict with the spec; with spec= leave these arguments "
            "at their defaults or make them agree"
        )
    check_axes_count(shape, spec)
    return spec


def check_axes_count(shape: Tuple[int, ...], spec: RMSNormSpec) -> None:
    if len(shape) != len(spec.axes):
        raise RMSNormError(
            f"normalized_shape={shape} has {len(shape)} dims but the spec normalizes "
            f"{len(spec.axes)} axes {spec.axes}; give one size per normalized axis"
        )


def spec_field(name: str) -> property:
    def get(self: Any) -> Any:
        if name == "eps":
            return self._eps_attribute()
        return getattr(self._spec_now(), name)

    def set_(self: Any, value: Any) -> None:
        if name == "eps":
            self._set_eps(value)
        else:
            self._set_field(name, value)

    what = "fixed: it shapes the parameters" if name in STRUCTURAL else "assigning replaces it"
    return property(get, set_, doc=f"The spec's ``{name}`` ({what}).")


def normalized_shape_field() -> property:
    """``normalized_shape``: read, as torch.nn.RMSNorm's; assigning it is refused."""

    def get(self: Any) -> tuple:
        return self._shape_given  # as torch.nn.RMSNorm keeps it (``_given.shape_given``)

    def set_(self: Any, value: Any) -> None:
        raise RMSNormError(
            f"normalized_shape={value!r} cannot be assigned: it shapes the parameters; build a "
            "new module with RMSNorm.from_spec(spec, normalized_shape)"
        )

    return property(
        get, set_, doc="The sizes of the normalized axes (fixed: they shape the parameters)."
    )


def elementwise_affine_field() -> property:
    """``elementwise_affine``: torch.nn.RMSNorm's name for ``use_scale``."""

    def get(self: Any) -> Any:
        return self._affine_given  # as given (``1`` stays 1), as torch.nn.RMSNorm keeps it

    def set_(self: Any, value: Any) -> None:
        self.use_scale = value  # refused likewise: it shapes the parameters

    return property(get, set_, doc="torch.nn.RMSNorm's name for ``use_scale`` (fixed).")


def check_structure(sizes: Tuple[int, ...], current: RMSNormSpec, spec: RMSNormSpec) -> None:
    """Raise unless ``spec`` keeps the parameters of a module with ``current``."""
    check_axes_count(sizes, spec)
    changed = [
        f"{f} ({getattr(current, f)!r} -> {getattr(spec, f)!r})"
        for f in STRUCTURAL
        if getattr(spec, f) != getattr(current, f)
    ]
    if changed:
        raise RMSNormError(
            f"cannot change {', '.join(changed)} on an existing module: they decide its "
            "parameters; build a new one with RMSNorm.from_spec(spec, normalized_shape)"
        )


def eps_assignment(spec: RMSNormSpec, eps: Any) -> Tuple[RMSNormSpec, bool, Optional[float]]:
    """``m.eps = eps`` as torch.nn.RMSNorm takes it: ``(spec, follows_dtype, override)``.

    None: the input dtype's epsilon at call time (the spec records float32's); NaN, +inf,
    a negative number, one that underflows the compute dtype or a bool: computed as torch
    computes them, with no spec (``override``); else the spec's eps (the float torch
    computes with), validated.
    """
    value = eps_value(eps)
    if value is None:
        return spec.replace(eps=FLOAT32_EPS), True, None
    if eps_outside_spec(eps, spec.compute_dtype):
        return spec, False, value
    return spec.replace(eps=value), False, None


def module_repr(shape: tuple, eps: Any, affine: Any, spec: RMSNormSpec) -> str:
    """torch.nn.RMSNorm's ``extra_repr`` (``(5,), eps=0.001, elementwise_affine=True``),
    then ``field=value`` for each spec field other than what torch.nn.RMSNorm computes
    (the ``torch`` preset over the trailing dims; ``bias=True`` for ``use_bias``). ``shape``,
    ``eps`` and ``affine`` are shown as given, formatted by ``str.format`` as torch's are."""
    torch_spec = RMSNormSpec.preset("torch").replace(
        axes=tuple(range(-len(shape), 0)),
        eps=spec.eps,
        use_scale=spec.use_scale,
        param_dtype=spec.param_dtype,
    )
    parts = ["{}, eps={}, elementwise_affine={}".format(shape, eps, affine)]
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        if value != getattr(torch_spec, field.name):
            parts.append(f"{'bias' if field.name == 'use_bias' else field.name}={value!r}")
    return ", ".join(parts)


def make_parameters(
    module: torch.nn.Module,
    shape: Tuple[int, ...],
    spec: RMSNormSpec,
    device: Any,
    dtype: Optional[torch.dtype],
) -> None:
    """``weight`` and ``bias`` of ``shape`` where ``spec`` uses them; complex ones where
    ``dtype`` is complex, as torch makes them (the spec records their real dtype). An
    unused weight is registered as None, as ``torch.nn.RMSNorm`` registers it; an unused
    bias (torch's module has none) is a plain None attribute, which every forward reads
    at the cost of a dict lookup, where a registered None costs ``nn.Module.__getattr__``
    (0.8 us, a third of a decode call's overhead here). Assigning a ``Parameter`` to it
    registers that as usual (``nn.Module.__setattr__``), for forward to refuse unless
    the spec has ``use_bias``."""
    dtype = dtype_value(dtype)
    complex_dtype = isinstance(dtype, torch.dtype) and dtype.is_complex
    pdtype = dtype if complex_dtype else torch_dtype(spec.param_dtype)
    for name, used in (("weight", spec.use_scale), ("bias", spec.use_bias)):
        if used:
            empty = torch.empty(shape, device=device, dtype=pdtype)
            setattr(module, name, torch.nn.Parameter(empty))
        elif name == "weight":
            module.register_parameter(name, None)
        else:
            module.bias = None


def spec_of_parameters(
    spec: RMSNormSpec, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor]
) -> RMSNormSpec:
    """``spec`` with ``param_dtype`` read from the parameters present (a module's weight
    may be cast after construction); a non-float parameter assigned by hand is left for
    forward to refuse, with its name."""
    present = [dtype_name(p.dtype) for p in (weight, bias) if p is not None]
    if present and present[0] != spec.param_dtype and present[0] in FLOAT_DTYPES:
        return spec.replace(param_dtype=present[0])
    return spec
