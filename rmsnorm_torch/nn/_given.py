"""torch.nn.RMSNorm's constructor arguments in every form its module accepts, read as
torch reads them: ``eps`` as the float its op computes with, ``elementwise_affine`` and
``bias`` by their truth, ``normalized_shape`` kept as given for ``repr`` and
``m.normalized_shape``. Never compiled by TorchScript (the module's constructor and
attribute setters call these).
"""

from __future__ import annotations

import numbers
from typing import Any, List, Optional

import numpy as np
import torch

from rmsnorm_core import RMSNormTypeError

_EPS_FORMS = (
    "a real number (float, int or bool, NumPy's too), a 0-dim tensor without grad as torch's op "
    "reads one, or None for the epsilon of the dtype torch computes in"
)


def eps_is_bool(eps: Any) -> bool:
    """Whether ``eps`` is a bool (Python's, NumPy's, or a bool tensor): torch computes it as
    0 or 1, and a spec holds no bool (``RMSNormSpec`` refuses one as a likely mistake)."""
    if isinstance(eps, torch.Tensor):
        return eps.dtype == torch.bool
    return isinstance(eps, (bool, np.bool_))


def eps_value(eps: Any) -> Optional[float]:
    """The float torch.nn.RMSNorm's forward computes with for ``eps`` (None stays None).

    torch's op reads ``eps`` as a double: a number by its value, a bool as 0 or 1, a 0-dim
    tensor without grad by ``item()`` (a complex one only with a zero imaginary part). A
    module with any other eps is built by torch and refused by its first call; ours refuses
    it when built or assigned, with the same reasons.

    Raises:
        rmsnorm_core.RMSNormTypeError: naming ``eps`` and the forms accepted.
    """
    if eps is None:
        return None
    if isinstance(eps, (numbers.Real, np.bool_)):
        return float(eps)
    if isinstance(eps, torch.Tensor):
        reason = _tensor_eps_refusal(eps)
        if reason:
            raise RMSNormTypeError(
                f"eps={_shown(eps)} is not accepted ({reason}); eps must be {_EPS_FORMS}"
            )
        value = eps.item()
        return float(value.real) if isinstance(value, complex) else float(value)
    raise RMSNormTypeError(f"eps={_shown(eps)} is not accepted; eps must be {_EPS_FORMS}")


def eps_shown(follows_dtype: bool, given: Any, spec_eps: float) -> Any:
    """``m.eps`` as ``torch.nn.RMSNorm``'s: None while eps follows the input dtype, else
    the value given (``eps=1`` stays the int 1), or the spec's."""
    if follows_dtype:
        return None
    if given is not None:
        return given
    return spec_eps


def _tensor_eps_refusal(eps: torch.Tensor) -> str:
    """Why torch's op refuses the tensor ``eps`` ("" where it reads it)."""
    if eps.dim() != 0:
        return f"a tensor of shape {tuple(eps.shape)}"
    if eps.requires_grad:
        return "a tensor that requires grad"
    if eps.is_meta:
        return "a tensor on the meta device has no value"
    if eps.is_complex() and eps.imag.item() != 0:
        return "a complex tensor with a nonzero imaginary part"
    return ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:50] + "..."


def flag_value(name: str, value: Any) -> bool:
    """``elementwise_affine`` or ``bias`` by its truth, as torch.nn.RMSNorm's ``if
    self.elementwise_affine:`` reads it (``1``, ``np.True_`` and ``0`` are accepted).

    Raises:
        rmsnorm_core.RMSNormTypeError: the value has no truth (a tensor of several elements).
    """
    try:
        return bool(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise RMSNormTypeError(
            f"{name}={_shown(value)} is not accepted ({err}); {name} must be a bool (or a "
            "value with a truth, as torch reads it)"
        ) from None


def shape_given(normalized_shape: Any) -> tuple:
    """``normalized_shape`` as torch.nn.RMSNorm stores it: ``(n,)`` for one int, else
    ``tuple(normalized_shape)`` (NumPy ints stay NumPy ints, as ``repr`` shows them)."""
    if isinstance(normalized_shape, numbers.Integral):
        return (normalized_shape,)
    return tuple(normalized_shape)


def shape_sizes(normalized_shape: Any) -> Any:
    """``normalized_shape`` with each integer tensor in it read as an int, as torch.nn.RMSNorm
    reads one (``torch.empty`` takes a 0-dim integer tensor as a size): ``[torch.tensor(5)]``
    and ``torch.tensor([2, 5])``; anything else is returned as given, for
    ``check_normalized_shape`` to accept or refuse."""
    if isinstance(normalized_shape, torch.Tensor) and normalized_shape.dim() == 1:
        normalized_shape = tuple(normalized_shape)  # as torch's tuple(normalized_shape)
    if not isinstance(normalized_shape, (list, tuple)):
        return normalized_shape
    return [int(d) if _integer_scalar(d) else d for d in normalized_shape]


def _integer_scalar(value: Any) -> bool:
    if not isinstance(value, torch.Tensor) or value.dim() != 0 or value.dtype == torch.bool:
        return False
    return not (value.is_floating_point() or value.is_complex())


def dtype_value(dtype: Any) -> Any:
    """``dtype`` as torch's factories read it: Python's ``float``, ``complex``, ``int`` and
    ``bool`` name torch.float64, torch.complex128, torch.int64 and torch.bool; anything
    else is returned as given (a ``torch.dtype``, None, or a value refused later)."""
    if dtype in (float, complex, int, bool):
        return torch.empty(0, dtype=dtype).dtype
    return dtype


def _script_constant(value: Any) -> bool:
    """Whether TorchScript takes ``value`` as a constant (None, bool, int, float, str, or a
    tuple of them); NumPy scalars and tensors it refuses."""
    if isinstance(value, tuple):
        return all(_script_constant(v) for v in value)
    return value is None or isinstance(value, (int, float, str))  # np.float64 is a float


def script_constants(module: torch.nn.Module, names: List[str]) -> Optional[List[str]]:
    """``names`` (torch.nn.RMSNorm's ``__constants__``) less those whose value on
    ``module`` TorchScript refuses as a constant, or None when it takes them all: scripted
    code reads none of them (forward runs the recipe), so a tensor or NumPy eps, which
    torch's own module cannot script with, leaves the module scriptable, without that
    attribute on the scripted copy."""
    kept = [n for n in names if _script_constant(getattr(module, n))]
    return None if len(kept) == len(names) else kept


def show_torch_fields(module: torch.nn.Module, shape: tuple, eps: Any, affine: Any) -> None:
    """torch.nn.RMSNorm's fields where torch's own code reads them: its ``extra_repr``
    formats ``module.__dict__`` (where the subclass's properties still answer attribute
    access), and TorchScript reads ``__constants__`` (:func:`script_constants`)."""
    module.__dict__.update(normalized_shape=shape, eps=eps, elementwise_affine=affine)
    kept = script_constants(module, list(torch.nn.RMSNorm.__constants__))
    if kept is None:
        module.__dict__.pop("__constants__", None)
    else:
        module.__dict__["__constants__"] = kept
