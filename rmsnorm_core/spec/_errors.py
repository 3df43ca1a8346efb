"""The library's one exception family.

Every error raised on purpose by rmsnorm-bridge is an :class:`RMSNormError`,
which subclasses :class:`ValueError`, so callers' existing ``except
ValueError`` handlers keep working. Errors about the *type* of a value are
:class:`RMSNormTypeError`, which is also a :class:`TypeError`.
"""

from __future__ import annotations


class RMSNormError(ValueError):
    """A value given to rmsnorm-bridge is not accepted.

    The message names the parameter (or file), the value received and what is
    accepted.
    """


class RMSNormTypeError(RMSNormError, TypeError):
    """A value given to rmsnorm-bridge has a type that is not accepted."""


class RMSNormUsageError(RMSNormError):
    """A command-line argument is missing, contradictory or malformed (exit code 2)."""
