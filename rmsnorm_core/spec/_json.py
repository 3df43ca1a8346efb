"""The one JSON reader of the tree: strict where Python's ``json`` is lenient.

Python's ``json`` keeps the last of two equal keys (``{"eps": 1e-6, "eps": 0.1}``
reads as 0.1, silently) and turns an integer literal of any length into an int (a
400-digit axis is accepted, and one converted to float raises ``OverflowError``).
Every JSON a user hands us (a spec, a checkpoint's metadata, a ``--baseline``
report, a Hugging Face ``config.json``, a ``--set`` value) goes through
:func:`loads_strict`, which refuses both with a one-line :class:`RMSNormError`.
``NaN`` and ``Infinity`` stay readable: our own reports write them, and the spec's
validation refuses them where a field must be finite.
"""

from __future__ import annotations

import json
from typing import Any

from rmsnorm_core.spec._errors import RMSNormError

MAX_INT_DIGITS = 20
"""The longest integer literal read (a uint64 has 20 digits; no axis, shape, count or
version comes near)."""


class NotJSON(RMSNormError):
    """The text is not JSON at all (malformed, undecodable): a reader that falls back
    to reading the text as a plain string (``--set FIELD=VALUE``) catches this one."""


class _Refused(Exception):
    """Raised inside the decoder's hooks; turned into one RMSNormError by the caller."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict; a key given twice is refused."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(
                f"the key {key[:80]!r} appears twice in one object; each key may appear once"
            )
        out[key] = value
    return out


def _int(text: str) -> int:
    """An integer literal, at most :data:`MAX_INT_DIGITS` digits long."""
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Refused(
            f"the integer {text[:12]}... has {digits} digits; at most {MAX_INT_DIGITS} are accepted"
        )
    return int(text)


def loads_strict(text: str | bytes | bytearray, what: str) -> Any:
    """The JSON value of ``text``, refusing duplicate keys and over-long integers.

    Args:
        text: the JSON document.
        what: names the document in an error, e.g. ``"spec JSON"`` or
            ``"checkpoint 'a.safetensors': the 'layers' metadata"``.

    Returns:
        The decoded value (dicts, lists, str, int, float, bool, None).

    Raises:
        NotJSON: ``"<what> is not valid JSON: <reason>"``, one line: malformed
            text or undecodable bytes.
        RMSNormError: ``"<what> is not accepted: <reason>"``, one line: a key
            given twice in one object, an integer of more than
            :data:`MAX_INT_DIGITS` digits; ``"<what> is nested too deeply to
            read"``.
    """
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_int=_int)
    except _Refused as err:
        raise RMSNormError(f"{what} is not accepted: {err}") from None
    except RecursionError:
        raise RMSNormError(f"{what} is nested too deeply to read") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise NotJSON(f"{what} is not valid JSON: {reason}") from None
