"""The library's one exception family.

Every error raised on purpose by rmsnorm-bridge is an :class:`RMSNormError`,
which subclasses :class:`ValueError`, so callers' existing ``except
ValueError`` handlers keep working. Errors about the *type* of a value are
:class:`RMSNormTypeError`, which is also a :class:`TypeError`; a tensor of the
wrong shape raises :class:`RMSNormShapeError`, also a :class:`RuntimeError`
(PyTorch's class for it); a tensor of a dtype no norm computes,
:class:`RMSNormDtypeError`, also a :class:`NotImplementedError`; tensors on two
devices, :class:`RMSNormDeviceError`, also a :class:`RuntimeError`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RMSNormError(ValueError):
    """A value given to rmsnorm-bridge is not accepted.

    The message names the parameter (or file), the value received and what is
    accepted.
    """


class RMSNormTypeError(RMSNormError, TypeError):
    """A value given to rmsnorm-bridge has a type that is not accepted."""


class RMSNormShapeError(RMSNormError, RuntimeError):
    """A tensor's shape does not fit the layer or the call (also a :class:`RuntimeError`,
    what PyTorch raises for the same mistake, so ``except RuntimeError`` written
    for ``torch.nn.RMSNorm`` catches it too)."""


class RMSNormDtypeError(RMSNormTypeError, NotImplementedError):
    """A tensor's dtype is not one the norm computes (an integer, bool or float8 input,
    weight or bias): also a :class:`NotImplementedError`, a :class:`RuntimeError`, which
    PyTorch raises for such a tensor, so ``except NotImplementedError`` or ``except
    RuntimeError`` written for ``torch.nn.RMSNorm`` catches it too."""


class RMSNormDeviceError(RMSNormError, RuntimeError):
    """The tensors of one call are on different devices (also a :class:`RuntimeError`,
    what PyTorch raises for the same mistake)."""


class RMSNormWarning(UserWarning):
    """Something was left out or assumed, and the result is still right (a reader that
    skipped tensors which are not RMSNorms names them in one of these)."""


class RMSNormUsageError(RMSNormError):
    """A command-line argument is missing, contradictory or malformed (exit code 2)."""


def did_you_mean(value: object, accepted: Iterable[str], cutoff: float = 0.6) -> str:
    """``"; did you mean 'llama'?"`` when ``value`` is a string close to one of
    ``accepted`` (``difflib``'s ratio of at least ``cutoff``, at most three offered), else
    ``""``:
    the tail every "is not accepted" message adds, so a typo (``lama``, ``verfy``,
    ``--preset``) is answered with the word it missed."""
    if not isinstance(value, str) or not value:
        return ""
    close = difflib.get_close_matches(value, list(accepted), n=3, cutoff=cutoff)
    if not close:
        return ""
    return f"; did you mean {' or '.join(repr(c) for c in close)}?"
