"""The framework-neutral RMSNorm specification."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar

from rmsnorm_core.spec._errors import RMSNormError, RMSNormTypeError, did_you_mean
from rmsnorm_core.spec._presets import PRESET_FIELDS
from rmsnorm_core.spec._rules import Recipe
from rmsnorm_core.spec._spec_json import SCHEMA_VERSION, parse_json, spec_from_dict
from rmsnorm_core.spec._validation import (
    canonical_axes_field,
    choices,
    require_bool,
    require_choice,
    require_eps,
    require_real,
)


@dataclasses.dataclass(frozen=True)
class RMSNormSpec:
    """One RMSNorm, specified once; every backend computes exactly this.

    For an input ``x`` and the normalized axes ``A``:

    1. ``h = cast(x, compute)``; compute is float32 (float64 for float64
       inputs), float64, or the input dtype itself (``compute_dtype="input"``,
       to reproduce naive code: every elementwise step rounds to that dtype).
    2. ``ms = mean(h*h over A)``; with ``partial=p < 1`` only the first
       ``k = max(1, floor(p*n))`` elements of the flattened normalized block
       (axes in increasing order, C order) enter the mean, and ``k`` is the
       divisor (the paper's pRMSNorm).
    3. ``inv = rsqrt(ms + eps)`` (``eps_placement="inside"``) or
       ``inv = 1 / (sqrt(ms) + eps)`` (``"outside"``, the paper's code).
    4. ``g = scale_offset + scale`` formed in float32 (float64 when compute is
       float64, or for float64 parameters without an offset: torch's and flax's
       type promotion), never in half precision; ``g = 1`` without a scale.
    5. ``cast_order="after_scale"`` (Gemma): ``y = cast_out(h*inv*g + b)``,
       one rounding; ``(h*inv)*g`` (``scale_multiplies="normalized"``: torch,
       Hugging Face) or ``h*(inv*g)`` (``"inverse"``: flax), which round
       differently in float32 though the formula is one. ``"before_scale"`` (Llama, ONNX): ``y =
       cast_out(cast_in(h*inv)*g + b)``: the normalized value is rounded to
       the input dtype, then the product (and bias) rounded once more.
    6. ``output_dtype="input"`` gives the input dtype; ``"promote"`` promotes
       the input dtype with the dtypes of the parameters present (flax's rule:
       bfloat16 x float32 -> float32; no parameters -> the input dtype);
       ``"param"`` gives the parameters' dtype (T5's ``w * h.to(w.dtype)``:
       a float32 input to bfloat16 weights gives bfloat16; no parameters -> the
       input dtype), and with ``before_scale`` ``h*inv`` is rounded to that
       dtype, not the input's, before the scale.
    7. Residual variant: ``s = x + residual`` rounded to ``residual_dtype``
       (the input dtype, or float32 as flash-attn's ``residual_in_fp32``); the
       norm is computed from the stored ``s`` and returns ``(y, s)``; the
       dtype rules above refer to the dtype of ``x``.

    Edge rules: an all-zero row gives zeros and finite gradients (with eps
    outside, the gradient of ``sqrt`` at 0 is taken as 0); a NaN stays in its
    own row (the row becomes NaN), an Inf too (its row: NaN there, 0
    elsewhere); empty batches give empty outputs. The sum of squares is held
    in the compute dtype: in float32 it overflows past 3.4e38 (float32 or
    bfloat16 rows with |x| >~ 1.8e19), giving ``inv = 0`` and a row of zeros
    -- defined, the same in every backend, and not rescaled (rescaling would
    cost every call a max-abs pass). float16 inputs never overflow it.
    Subnormal float32 inputs may be flushed to zero by XLA on the CPU; the
    difference stays far below the tolerance table's atol.

    Attributes:
        axes: the normalized axes, any non-empty set of distinct ints;
            negative values count from the end. Default ``(-1,)``.
        eps: finite float >= 0 (0 as upstream: a row of zeros gives NaN). Default
            ``1e-6``.
        eps_placement: ``"inside"`` (default) or ``"outside"``.
        compute_dtype: ``"float32"`` (default), ``"float64"`` or ``"input"``.
        cast_order: ``"after_scale"`` (default) or ``"before_scale"``.
        output_dtype: ``"input"`` (default), ``"promote"`` or ``"param"``.
        param_dtype: dtype parameters are created in; one of float16,
            bfloat16, float32 (default), float64.
        use_scale: learn a scale (gamma) over the normalized axes. Default True.
        scale_offset: finite number added to the scale in float32: 0.0
            (default) or 1.0 for Gemma-style zero-centered gamma. Needs
            ``use_scale``.
        use_bias: learn a bias over the normalized axes. Default False.
        partial: fraction ``0 < p <= 1`` of the block used for the statistic.
            Default 1.0.
        residual_dtype: ``"input"`` (default) or ``"float32"``.
        scale_multiplies: ``"normalized"`` (default, ``(h*inv)*g``) or
            ``"inverse"`` (``h*(inv*g)``, flax's order). ``"inverse"`` needs
            ``cast_order="after_scale"``.

    Raises:
        RMSNormError: a field has a value outside its accepted range.
        RMSNormTypeError: a field has the wrong type.
    """

    axes: tuple[int, ...] = (-1,)
    eps: float = 1e-6
    eps_placement: str = "inside"
    compute_dtype: str = "float32"
    cast_order: str = "after_scale"
    output_dtype: str = "input"
    param_dtype: str = "float32"
    use_scale: bool = True
    scale_offset: float = 0.0
    use_bias: bool = False
    partial: float = 1.0
    residual_dtype: str = "input"
    scale_multiplies: str = "normalized"

    schema_version: ClassVar[int] = SCHEMA_VERSION
    """The JSON layout version :meth:`to_dict` writes (:data:`SCHEMA_VERSION`)."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "axes", canonical_axes_field(self.axes))
        set_(self, "eps", require_eps(self.eps, self.compute_dtype))
        for field in _STRING_FIELDS:
            require_choice(field, getattr(self, field), choices(field))
        require_bool("use_scale", self.use_scale)
        require_bool("use_bias", self.use_bias)
        offset = require_real("scale_offset", self.scale_offset)
        if not math.isfinite(offset):
            raise RMSNormError(
                f"scale_offset={self.scale_offset!r} is not accepted; scale_offset "
                "must be a finite number"
            )
        if offset != 0.0 and not self.use_scale:
            raise RMSNormError(
                f"scale_offset={offset!r} needs use_scale=True; without a scale "
                "the offset has nothing to shift (use scale_offset=0.0)"
            )
        set_(self, "scale_offset", offset)
        partial = require_real("partial", self.partial)
        if not (0.0 < partial <= 1.0):
            raise RMSNormError(
                f"partial={self.partial!r} is not accepted; partial must satisfy 0 < partial <= 1"
            )
        set_(self, "partial", partial)
        if self.scale_multiplies == "inverse" and self.cast_order != "after_scale":
            raise RMSNormError(
                "scale_multiplies='inverse' needs cast_order='after_scale' (got "
                f"{self.cast_order!r}): 'before_scale' rounds h*inv before the scale "
                "multiplies, so there is no inverse to fold it into; use "
                "scale_multiplies='normalized'"
            )

    @property
    def recipe(self) -> Recipe:
        """The spec compiled to plain values, what the backends' kernels receive.

        A :class:`~rmsnorm_core.spec._rules.Recipe` (a NamedTuple TorchScript can
        hold); computed from the frozen fields, so it cannot drift from them.
        """
        return Recipe(
            axes=list(self.axes),
            eps=self.eps,
            eps_outside=self.eps_placement == "outside",
            compute_dtype=self.compute_dtype,
            before_scale=self.cast_order == "before_scale",
            promote_output=self.output_dtype == "promote",
            param_output=self.output_dtype == "param",
            param_dtype=self.param_dtype,
            use_scale=self.use_scale,
            scale_offset=self.scale_offset,
            use_bias=self.use_bias,
            partial=self.partial,
            residual_float32=self.residual_dtype == "float32",
            scale_inverse=self.scale_multiplies == "inverse",
        )

    def replace(self, **changes: Any) -> RMSNormSpec:
        """Return a copy with ``changes`` applied, validated like a new spec."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise RMSNormTypeError(
                f"replace() got unknown field(s) {unknown}; accepted fields are "
                f"{[f.name for f in dataclasses.fields(self)]}"
                f"{did_you_mean(unknown[0], [f.name for f in dataclasses.fields(self)])}"
            )
        return dataclasses.replace(self, **changes)

    def differences(self, other: RMSNormSpec) -> dict[str, tuple[Any, Any]]:
        """``{field: (self's value, other's value)}`` for every field that differs."""
        return {
            f.name: (getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        }

    def check_same(self, other: RMSNormSpec, *, what: str, mine: str, theirs: str) -> None:
        """Raise unless ``other`` equals this spec, naming every field that differs.

        Raises:
            RMSNormError: ``"{what}: eps=1e-06 (mine) but 0.5 (theirs), ..."``.
        """
        diff = self.differences(other)
        if diff:
            fields = ", ".join(
                f"{k}={a!r} ({mine}) but {b!r} ({theirs})" for k, (a, b) in diff.items()
            )
            raise RMSNormError(f"{what}: the specs differ: {fields}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of every field plus ``schema_version``."""
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            data[field.name] = list(value) if field.name == "axes" else value
        return data

    @classmethod
    def from_dict(cls, data: Any) -> RMSNormSpec:
        """Build a spec from :meth:`to_dict` output, through the constructor.

        Missing fields take their defaults; a missing ``schema_version`` is
        read as version 1.

        Raises:
            RMSNormError: unknown keys, a schema version newer than this
                library's, or any field the constructor rejects.
        """
        return spec_from_dict(cls, data)

    def to_json(self, *, indent: int | None = None) -> str:
        """Return the spec as JSON text (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> RMSNormSpec:
        """Parse JSON text written by :meth:`to_json`.

        Raises:
            RMSNormError: the text is not JSON, or :meth:`from_dict` refuses it.
        """
        return cls.from_dict(parse_json(text))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> RMSNormSpec:
        """Return a named preset, optionally with fields overridden.

        ``rmsnorm presets`` lists them; the documentation's presets table gives
        each one's upstream source and formula.

        Args:
            name: one of :meth:`presets`' keys.
            **overrides: spec fields to change, validated as in the constructor.

        Raises:
            RMSNormError: ``name`` is not a preset, or an override is rejected.
        """
        if not isinstance(name, str):
            raise RMSNormTypeError(f"preset name must be a str, got {type(name).__name__} {name!r}")
        try:
            fields = PRESET_FIELDS[name]
        except KeyError:
            raise RMSNormError(
                f"preset={name!r} is not a preset; accepted presets are "
                f"{', '.join(repr(n) for n in PRESET_FIELDS)}{did_you_mean(name, PRESET_FIELDS)}"
            ) from None
        spec = cls(**fields)
        return spec.replace(**overrides) if overrides else spec

    @classmethod
    def presets(cls) -> dict[str, RMSNormSpec]:
        """Return every preset by name (a fresh dict each call)."""
        return {name: cls(**fields) for name, fields in PRESET_FIELDS.items()}


_STRING_FIELDS = (
    "eps_placement",
    "compute_dtype",
    "cast_order",
    "output_dtype",
    "param_dtype",
    "residual_dtype",
    "scale_multiplies",
)


def preset(name: str, **overrides: Any) -> RMSNormSpec:
    """Return the preset ``name`` with ``overrides`` (see :meth:`RMSNormSpec.preset`)."""
    return RMSNormSpec.preset(name, **overrides)


def presets() -> dict[str, RMSNormSpec]:
    """Return every preset by name; the dict is a fresh copy."""
    return RMSNormSpec.presets()
