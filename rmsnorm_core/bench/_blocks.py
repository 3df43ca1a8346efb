"""Timing in repeated alternating blocks: the method behind every ratio of ``rmsnorm bench``.

Both sides are warmed up; a block is ``k`` back-to-back calls of one side, ``k`` the
fewest power of two for which the faster side's block lasts :data:`MIN_BLOCK_S` (one
call of a large shape, tens to thousands at a decode shape), so the clock's resolution and
one call's jitter are small against it. Then ``repeat`` pairs of blocks run, ours and
the peer in turn, the side that leads swapping from pair to pair: a drift that slows
the machine during a pair hits both sides alike, and a burst of other work spoils one
pair, whose ratio the median over the pairs sets aside. The clock is a parameter, so
the method is tested with a fake one and fake callables of known cost.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

#: The least duration (seconds) of the faster side's block of calls.
MIN_BLOCK_S = 2e-3
#: The most calls in a block (a side that returns in nanoseconds stops here).
MAX_BLOCK_CALLS = 1 << 16


@dataclasses.dataclass(frozen=True)
class BlockTimes:
    """What :func:`time_pairs` measured: per-call milliseconds of each side's block, pair
    by pair (``candidate_ms[i]`` and ``baseline_ms[i]`` ran side by side), and the calls
    in each block."""

    candidate_ms: list[float]
    baseline_ms: list[float]
    calls_per_block: int


def _block(result: object) -> None:
    """Wait for asynchronous results (JAX arrays) before the clock stops."""
    leaves = result if isinstance(result, (tuple, list)) else (result,)
    for leaf in leaves:
        ready = getattr(leaf, "block_until_ready", None)
        if ready is not None:
            ready()


def _time_block(fn: Callable[[], object], calls: int, clock: Callable[[], float]) -> float:
    """Seconds that ``calls`` back-to-back calls of ``fn`` take, each waited for."""
    start = clock()
    for _ in range(calls):
        _block(fn())
    return clock() - start


def calls_per_block(
    candidate: Callable,
    baseline: Callable,
    *,
    min_block_s: float = MIN_BLOCK_S,
    clock: Callable[[], float] = time.perf_counter,
) -> int:
    """The fewest power of two ``k`` (at most :data:`MAX_BLOCK_CALLS`) for which a block
    of ``k`` calls of the faster side lasts ``min_block_s`` or more."""
    k = 1
    while k < MAX_BLOCK_CALLS:
        fastest = min(_time_block(candidate, k, clock), _time_block(baseline, k, clock))
        if fastest >= min_block_s:
            break
        k *= 2
    return k


def time_pairs(
    candidate: Callable,
    baseline: Callable,
    warmup: int,
    repeat: int,
    *,
    min_block_s: float = MIN_BLOCK_S,
    clock: Callable[[], float] = time.perf_counter,
) -> BlockTimes:
    """Both sides timed in ``repeat`` pairs of alternating blocks (see the module
    docstring): ``warmup`` untimed calls of each, the block size from
    :func:`calls_per_block`, then pair ``i`` runs a block of ours and a block of the
    peer, ours first in even pairs and the peer first in odd ones."""
    for _ in range(warmup):
        _block(candidate())
        _block(baseline())
    k = calls_per_block(candidate, baseline, min_block_s=min_block_s, clock=clock)
    cand, base = [], []
    for i in range(repeat):
        if i % 2 == 0:
            c = _time_block(candidate, k, clock)
            b = _time_block(baseline, k, clock)
        else:
            b = _time_block(baseline, k, clock)
            c = _time_block(candidate, k, clock)
        cand.append(c * 1e3 / k)
        base.append(b * 1e3 / k)
    return BlockTimes(cand, base, k)
