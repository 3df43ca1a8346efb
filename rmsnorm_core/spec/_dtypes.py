"""Dtype names shared by every backend, and the one promotion rule.

Core speaks of dtypes by name ("float32", "bfloat16", ...) so it never needs
torch or jax; each backend maps these names onto its own dtype objects.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rmsnorm_core.spec import _rules

FLOAT_DTYPES: tuple[str, ...] = tuple(_rules.float_dtypes())
"""Floating dtypes an input, a parameter or a result may have."""

_NUMPY = {
    "float16": np.dtype(np.float16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
}


def dtype_name(dtype: Any) -> str:
    """Return the canonical name of ``dtype``.

    Args:
        dtype: a name, a NumPy dtype (ml_dtypes' bfloat16 included), or any
            object whose ``str()`` ends in a dtype name (``torch.float16``,
            ``jnp.bfloat16``), which keeps core free of framework imports.

    Returns:
        The name, e.g. ``"bfloat16"``; non-floating dtypes keep their own
        name (``"int32"``) so that callers can reject them with a message.
    """
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype).rsplit(".", 1)[-1]


def check_float_dtype(parameter: str, dtype: Any) -> str:
    """Return the name of ``dtype``, or raise if it is not a floating dtype.

    Raises:
        RMSNormTypeError: naming ``parameter`` when the dtype is integer,
            bool, complex or unknown.
    """
    name = dtype_name(dtype)
    _rules.check_float(parameter, name)
    return name


def numpy_dtype(name: str) -> np.dtype:
    """Return the NumPy dtype for a floating dtype name (bfloat16 via ml_dtypes).

    ml_dtypes is imported here, on the first bfloat16, not with the package: its
    import registers NumPy casts between all its dtypes, 1.1-1.3 s per process with
    ml_dtypes 0.7.0 on this machine (0.1 s with 0.6.0), which a process that never
    makes a bfloat16 array (a deployment that imports a backend only, most CLI
    commands) need not pay.
    """
    name = check_float_dtype("dtype", name)
    if name == "bfloat16" and name not in _NUMPY:
        import ml_dtypes

        _NUMPY[name] = np.dtype(ml_dtypes.bfloat16)
    return _NUMPY[name]


def promote(*names: str) -> str:
    """Promote floating dtype names as JAX and PyTorch both do (see ``rules.promote_pair``)."""
    result = names[0]
    for name in names[1:]:
        result = _rules.promote_pair(result, name)
    return result
