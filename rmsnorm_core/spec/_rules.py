"""The spec's rules, written once, in the subset of Python that TorchScript compiles.

Core's helpers (:func:`rmsnorm_core.canonical_axes`, :func:`dtype_plan`, ...)
and the PyTorch layer (inside scripted modules too) call these same
functions, so no rule exists in two copies. Hence the restrictions: only
``typing`` imports, ``List``/``Optional`` annotations, ``str.format`` with
bare ``{}`` fields, no globals read at run time, dtypes by name.

A spec is compiled once into a :class:`Recipe` of plain values (einops'
``TransformRecipe`` is the model); a call resolves the recipe against the
input's rank and dtypes with :func:`canonical_dims`, :func:`partial_count`
and :func:`resolve_dtypes`.
"""

from typing import List, NamedTuple, Optional

from rmsnorm_core.spec._errors import (
    RMSNormDtypeError,
    RMSNormError,
    RMSNormShapeError,
)


class Recipe(NamedTuple):
    """A validated spec compiled to plain values (see ``RMSNormSpec.recipe``).

    Field meanings are the spec's; the string options become booleans where
    they have two values.

    Attributes:
        axes: the spec's ``axes`` as a list (TorchScript takes no tuples).
        eps: the spec's ``eps``.
        eps_outside: ``eps_placement == "outside"``.
        compute_dtype: the spec's ``compute_dtype`` (``"input"`` included).
        before_scale: ``cast_order == "before_scale"``.
        promote_output: ``output_dtype == "promote"``.
        param_output: ``output_dtype == "param"``.
        param_dtype: the spec's ``param_dtype``.
        use_scale: the spec's ``use_scale``.
        scale_offset: the spec's ``scale_offset``.
        use_bias: the spec's ``use_bias``.
        partial: the spec's ``partial`` (1.0: the whole block).
        residual_float32: ``residual_dtype == "float32"``.
        scale_inverse: ``scale_multiplies == "inverse"`` (``y = h * (inv * g)``).
    """

    axes: List[int]
    eps: float
    eps_outside: bool
    compute_dtype: str
    before_scale: bool
    promote_output: bool
    param_output: bool
    param_dtype: str
    use_scale: bool
    scale_offset: float
    use_bias: bool
    partial: float
    residual_float32: bool
    scale_inverse: bool


class DtypePlan(NamedTuple):
    """Where an RMSNorm computes and rounds, for one input and parameter dtype: the one
    plan type (a tuple TorchScript can return; every backend consumes it).

    Attributes:
        input: dtype of ``x``.
        compute: dtype of the statistic and the normalized value.
        scale: dtype in which ``g = scale_offset + scale`` is formed and
            multiplied: float32, or float64 when compute is float64 or the
            parameters are float64 with no offset.
        intermediate: dtype ``h*inv`` is rounded to before the scale
            (``before_scale``: the input dtype; the output dtype with
            ``output_dtype="param"``), or None (``after_scale``).
        output: dtype of ``y``.
        residual: dtype of the residual sum ``s``.

    ``precision`` names the least precise of these a value passes through;
    parity checks key the tolerance table by it (``gradient_precision`` for
    gradients).
    """

    input: str
    compute: str
    scale: str
    intermediate: Optional[str]
    output: str
    residual: str

    @property
    def precision(self) -> str:
        """The least precise dtype a value passes through: the tolerance key."""
        steps = [self.output, self.compute]
        if self.intermediate is not None:
            steps.append(self.intermediate)
        return min(steps, key=_significand_bits)

    @property
    def gradient_precision(self) -> str:
        """The tolerance key for gradients: ``precision``, or the input dtype
        if narrower (``dx`` is stored in it)."""
        return min([self.precision, self.input], key=_significand_bits)


def _significand_bits(name: str) -> int:
    """bfloat16 (8) is the least precise, then float16 (11), float32, float64."""
    if name == "bfloat16":
        return 8
    if name == "float16":
        return 11
    if name == "float32":
        return 24
    return 53


def float_dtypes() -> List[str]:
    """The floating dtypes an input, a parameter or a result may have."""
    return ["float16", "bfloat16", "float32", "float64"]


def as_tuple(values: List[int]) -> str:
    """Format like Python's tuple repr: ``(5,)``, ``(1, -1)``, ``()``."""
    if len(values) == 1:
        return "({},)".format(values[0])
    return "(" + ", ".join([str(v) for v in values]) + ")"


def check_float(parameter: str, dtype: str, also: str = "") -> None:
    """Raise unless ``dtype`` (a name) is a floating dtype the spec accepts; ``also``
    ends the list of accepted dtypes where a framework takes more (torch: complex).

    Raises:
        RMSNormDtypeError: naming ``parameter`` and the dtype received (an
            ``RMSNormTypeError``, and a ``NotImplementedError`` as torch's for it).
    """
    if dtype not in float_dtypes():
        raise RMSNormDtypeError(
            "{} has dtype {}; accepted dtypes are {}{}".format(
                parameter, dtype, ", ".join(float_dtypes()), also
            )
        )


def _width(name: str) -> int:
    if name == "float64":
        return 64
    if name == "float32":
        return 32
    return 16


def promote_pair(a: str, b: str) -> str:
    """Promote two floating dtype names as JAX and PyTorch both do (TorchScript's
    fixed-arity form of ``rmsnorm_core.promote``).

    Equal names stay; the wider wins; float16 with bfloat16 gives float32.
    """
    if a == b:
        return a
    if _width(a) == 16 and _width(b) == 16:
        return "float32"
    return a if _width(a) > _width(b) else b


def canonical_dims(axes: List[int], rank: int) -> List[int]:
    """``axes`` for an input of ``rank``: non-negative and sorted.

    Raises:
        RMSNormError: ``rank`` is 0, or an axis is out of range or repeated.
    """
    if rank < 1:
        raise RMSNormError(
            "an input of rank 0 (a scalar) cannot be normalized; x must have rank >= 1 "
            "(axes={})".format(as_tuple(axes))
        )
    dims: List[int] = []
    for axis in axes:
        if axis < -rank or axis >= rank:
            raise RMSNormError(
                "axes={} is out of range for an input of rank {}; each axis must satisfy "
                "{} <= axis < {}".format(as_tuple(axes), rank, -rank, rank)
            )
        dim = axis % rank
        if dim in dims:
            raise RMSNormError(
                "axes={} name the same axis twice for an input of rank {}; each axis may "
                "appear once".format(as_tuple(axes), rank)
            )
        dims.append(dim)
    dims.sort()
    return dims


def is_trailing(dims: List[int], rank: int) -> bool:
    """Whether canonical ``dims`` are the last ``len(dims)`` axes."""
    return dims == list(range(rank - len(dims), rank))


def partial_count(partial: float, n: int) -> int:
    """How many elements of a block of ``n`` enter the statistic.

    ``max(1, floor(partial * n))`` for a non-empty block, ``n`` when
    ``partial`` is 1, and 0 for an empty block.
    """
    if n <= 0:
        return 0
    if partial >= 1.0:
        return n
    return max(1, min(n, int(partial * n)))


def block_count(partial: float, n: int) -> int:
    """The ``k`` every backend's plan stores: -1 for the whole block (``partial`` 1: no
    partial statistic, and no shape arithmetic in a trace), else :func:`partial_count`."""
    if partial >= 1.0:
        return -1
    return partial_count(partial, n)


def resolve_dtypes(recipe: Recipe, input: str, params: str) -> DtypePlan:
    """The dtype plan of one call.

    Args:
        recipe: the compiled spec.
        input: dtype name of ``x``.
        params: promoted dtype name of the parameters present, or ``""``
            when none is (then ``output_dtype="promote"`` keeps the input
            dtype, as flax does).
    """
    check_float("x", input)
    if recipe.compute_dtype == "input":
        compute = input
    elif recipe.compute_dtype == "float64" or input == "float64":
        compute = "float64"
    else:
        compute = "float32"
    output = input
    if recipe.promote_output and params != "":
        output = promote_pair(input, params)
    if recipe.param_output and params != "":
        output = params
    intermediate: Optional[str] = None
    if recipe.before_scale:  # "param": rounded to the parameters' dtype, as T5 casts
        intermediate = output if recipe.param_output else input
    residual = input
    if recipe.residual_float32:
        residual = promote_pair(input, "float32")
    scale = "float32"
    if compute == "float64" or (params == "float64" and recipe.scale_offset == 0.0):
        # a float64 weight multiplies in float64, as type promotion does in torch (every
        # preset's upstream) and flax; an offset gain is formed in float32 (Gemma's
        # ``1 + w.float()``)
        scale = "float64"
    return DtypePlan(input, compute, scale, intermediate, output, residual)


def check_param_shape(name: str, shape: List[int], expected: List[int]) -> None:
    """Raise unless a parameter has the sizes of the normalized axes.

    Raises:
        RMSNormShapeError: naming ``name``, the shape received and the one expected.
    """
    if shape != expected:
        raise RMSNormShapeError(
            "{} has shape {}; expected {}, the sizes of the normalized axes in increasing "
            "axis order".format(name, as_tuple(shape), as_tuple(expected))
        )


def check_unused(name: str, field: str) -> None:
    """Raise for a parameter given although the spec has ``use_<field>=False``."""
    raise RMSNormError(
        "{} was given but the spec has use_{}=False; pass {}=None or use a spec with "
        "use_{}=True".format(name, field, name, field)
    )


def check_residual_shape(shape: List[int], x_shape: List[int]) -> None:
    """Raise unless ``residual`` has ``x``'s shape."""
    if shape != x_shape:
        raise RMSNormShapeError(
            "residual has shape {}; expected the shape of x, {}".format(
                as_tuple(shape), as_tuple(x_shape)
            )
        )


def check_normalized_sizes(x_shape: List[int], axes: List[int], sizes: List[int]) -> None:
    """Raise unless ``x``'s normalized axes have the sizes a layer was built for."""
    dims = canonical_dims(axes, len(x_shape))
    got = [x_shape[d] for d in dims]
    if got != sizes:
        raise RMSNormShapeError(
            "x has shape {} but normalized_shape={} expects its axes {} to have sizes {}; "
            "got {}".format(
                as_tuple(x_shape), as_tuple(sizes), as_tuple(axes), as_tuple(sizes), as_tuple(got)
            )
        )
