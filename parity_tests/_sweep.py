"""Which rows of a wide parametrized sweep the default run takes.

``RMSNORM_FUZZ=long`` runs every sweep in full (and the long hypothesis profile);
the default run, the README's test command, takes a representative subset of each
sweep chosen at the sweep itself, so it stays under its ten-minute budget.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

Row = TypeVar("Row")

FUZZ = os.environ.get("RMSNORM_FUZZ", "ci")
LONG = FUZZ == "long"


def sweep(full: Sequence[Row], subset: Sequence[Row]) -> list[Row]:
    """``full`` under ``RMSNORM_FUZZ=long``, else ``subset``.

    Args:
        full: every row of the sweep, in order.
        subset: the representative rows the default run takes (each one a row of
            ``full``, so the long run always holds them).

    Returns:
        The rows to parametrize with, in ``full``'s order.

    Raises:
        ValueError: ``subset`` is empty or holds a row ``full`` does not.
    """
    stray = [row for row in subset if row not in full]
    if stray or not subset:
        raise ValueError(f"subset: {stray or 'empty'}: each subset row must be a row of full")
    return list(full) if LONG else [row for row in full if row in subset]


def covering(
    full: Sequence[Row],
    groups: Sequence[tuple[int, ...]],
    key: Callable[[Row], Sequence[Hashable]] = tuple,
) -> list[Row]:
    """Rows of ``full`` that hold every combination ``full`` holds at each group of positions.

    A greedy pass (deterministic: the first row that covers the most combinations
    still missing) picks rows until, for each group of positions in ``groups``
    (``(0, 2)``: fields 0 and 2 of ``key(row)``), every combination of those fields
    found in ``full`` is in a picked row; each value of each field named stays too.

    Args:
        full: every row of the sweep.
        groups: the groups of positions (in ``key(row)``) whose combinations must all stay.
        key: a row's hashable fields (default: the row itself, a tuple of them).

    Returns:
        The picked rows, in ``full``'s order.
    """

    def held(row: Row) -> set[tuple[int, tuple[Hashable, ...]]]:
        fields = key(row)
        return {(n, tuple(fields[i] for i in group)) for n, group in enumerate(groups)}

    missing = set().union(*(held(row) for row in full))
    picked: list[int] = []
    while missing:
        best = max(range(len(full)), key=lambda n: len(held(full[n]) & missing))
        picked.append(best)
        missing -= held(full[best])
    return [full[n] for n in sorted(picked)]
