"""``rms_norm`` with ``torch.nn.functional.rms_norm``'s signature, arguments and results.

``rmsnorm_torch.functional.rms_norm(input, normalized_shape, weight=None, eps=None)``
is a drop-in for ``torch.nn.functional.rms_norm``: the ``torch`` preset over the
trailing ``normalized_shape``, with torch's defaults and errors:

- ``eps=None`` is the epsilon of the dtype torch computes in: float64's for a
  float64 input, float32's for float32, bfloat16 and float16 inputs.
- A shape that does not fit raises :class:`rmsnorm_core.RMSNormShapeError`,
  a ``RuntimeError`` (as torch's is) and a ``ValueError`` (as ours are), its
  message opening with torch's words.
- ``eps=0`` is a spec's (a row of zeros gives NaN, as torch's does).
  ``eps < 0`` (torch's own tests pass -0.5), NaN and inf are outside every
  spec: a row whose mean square is ``<= -eps`` divides by zero or takes the
  root of a negative number, NaN gives NaN everywhere. Such calls are torch's
  op itself, so they give what torch gives.
- complex64 and complex128 inputs (with a real or complex weight), and a
  complex weight on a real input, are computed as torch computes them (``x^2``,
  not ``|x|^2``: torch's formula in the complex dtype; for a real input, the
  real part of the product in its own dtype; ``kernels/_resolve.complex_unfit``).
- float8 inputs, which torch accepts, no spec describes: refused, saying so.

Results are bit-identical to torch's on the CPU (``parity_tests/test_torch_functional_dropin.py``
runs torch's own OpInfo samples). For specs other than the ``torch`` preset,
``rmsnorm_torch.rms_norm(x, spec, weight, bias)``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor

from rmsnorm_core import (
    FLOAT32_EPS,
    FLOAT64_EPS,
    FLOAT_DTYPES,
    RMSNormDtypeError,
    RMSNormShapeError,
    RMSNormSpec,
    dtype_name,
)
from rmsnorm_torch.kernels._torch_dtypes import real_dtype
from rmsnorm_torch.nn._arguments import check_eps, check_tensor, normalized_shape_list
from rmsnorm_torch.nn._functional import rms_norm as spec_rms_norm

__all__ = ["rms_norm"]


@lru_cache(maxsize=256)
def _spec(rank: int, eps: float, param_dtype: Optional[str]) -> RMSNormSpec:
    spec = RMSNormSpec.preset("torch").replace(axes=tuple(range(-rank, 0)), eps=eps)
    if param_dtype is None:
        return spec.replace(use_scale=False)
    return spec.replace(param_dtype=param_dtype)


def _check(input: Tensor, shape: List[int], weight: Optional[Tensor]) -> None:
    """torch's checks, in torch's order, with its words first."""
    if not shape:
        raise RMSNormShapeError(
            "Expected normalized_shape to be at least 1-dimensional, i.e., containing at "
            "least one element, but got normalized_shape = []"
        )
    if weight is not None and list(weight.shape) != shape:
        raise RMSNormShapeError(
            "Expected weight to be of same shape as normalized_shape, but got weight of shape "
            f"{list(weight.shape)} and normalized_shape = {shape}"
        )
    if list(input.shape[input.dim() - len(shape) :]) != shape or input.dim() < len(shape):
        raise RMSNormShapeError(
            f"Given normalized_shape={shape}, expected input with shape [*, "
            f"{', '.join(str(d) for d in shape)}], but got input of size {list(input.shape)}"
        )


def rms_norm(
    input: Tensor,
    normalized_shape: Union[int, Sequence[int]],
    weight: Optional[Tensor] = None,
    eps: Optional[float] = None,
) -> Tensor:
    """``torch.nn.functional.rms_norm``, computed as the ``torch`` preset (eps rules above).

    Args:
        input: a float16, bfloat16, float32, float64, complex64 or complex128 tensor.
        normalized_shape: the trailing sizes to normalize over (an int for one).
        weight: the scale, shaped ``normalized_shape``; None for none.
        eps: added to the mean square; None for the compute dtype's epsilon.

    Returns:
        The normalized tensor, in ``input``'s dtype.

    Raises:
        rmsnorm_core.RMSNormShapeError: a shape that does not fit (a RuntimeError).
        rmsnorm_core.RMSNormDtypeError: an input or weight of an integer, bool or float8
            dtype (also a NotImplementedError, as torch's for it).
        rmsnorm_core.RMSNormTypeError: an input or weight that is not a tensor; a
            normalized_shape that is not an int or a sequence of
            ints (a bool is not); an eps that is not a number, or is a bool: this
            call goes through a spec, which holds no bool (``RMSNorm(eps=True)``, which
            keeps no spec, computes torch's 0 or 1).
    """
    check_tensor("input", input)
    check_tensor("weight", weight, optional=True)
    shape = normalized_shape_list(normalized_shape)
    check_eps(eps)
    for name, t in (("input", input), ("weight", weight)):
        if t is not None and dtype_name(real_dtype(t.dtype)) not in FLOAT_DTYPES:
            raise RMSNormDtypeError(
                f"{name} has dtype {t.dtype}; rms_norm accepts float16, bfloat16, float32, "
                "float64, complex64 and complex128 (no spec describes an integer or float8 "
                "RMSNorm)"
            )
    _check(input, shape, weight)
    if eps is None:
        eps = FLOAT64_EPS if input.dtype in (torch.float64, torch.complex128) else FLOAT32_EPS
    if not 0 <= eps < math.inf:  # outside every spec (module docstring): torch's op itself
        return torch.rms_norm(input, shape, weight, eps)
    pdtype = None if weight is None else dtype_name(real_dtype(weight.dtype))
    return spec_rms_norm(input, _spec(len(shape), float(eps), pdtype), weight)
