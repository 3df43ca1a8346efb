"""``rmsnorm bench`` times in repeated alternating blocks: k back-to-back calls of one side,
then k of the other, k sized so a block lasts long enough to time well; the ratio is the
median of the pairs' ratios. Tested with a fake clock and fake callables of known cost:
no test here times anything."""

from __future__ import annotations

import functools

import pytest

from rmsnorm_core.bench import _bench, _blocks
from rmsnorm_core.bench._blocks import calls_per_block, time_pairs

TICK = 2.0**-20  # seconds; sums of whole ticks are exact in float64


class FakeMachine:
    """A clock that only the fake callables advance, and a log of who was called."""

    def __init__(self) -> None:
        self.ticks = 0
        self.log: list[str] = []
        self.burst: tuple[int, int, int] | None = None  # (first call, last call, extra cost)

    def now(self) -> float:
        return self.ticks * TICK

    def side(self, name: str, cost: int):
        def call():
            n = len(self.log)
            self.log.append(name)
            self.ticks += cost
            if self.burst and self.burst[0] <= n <= self.burst[1]:
                self.ticks += self.burst[2]  # another process took the core for a while

        return call


def test_blocks_alternate_k_calls_each_and_the_ratio_is_the_cost_ratio():
    m = FakeMachine()
    ours, peer = m.side("ours", 3), m.side("peer", 2)  # ours costs 1.5x the peer per call
    min_block = 1000 * TICK
    times = time_pairs(ours, peer, warmup=2, repeat=6, min_block_s=min_block, clock=m.now)
    k = times.calls_per_block
    # the fewest power of two whose block of the faster side (the peer) lasts min_block
    assert k * 2 * TICK >= min_block > (k // 2) * 2 * TICK and k & (k - 1) == 0 and k > 1
    timed = m.log[-2 * 6 * k :]  # the timed part: 6 pairs of blocks of k calls
    blocks = [timed[i * k : (i + 1) * k] for i in range(12)]
    assert all(len(set(b)) == 1 for b in blocks)
    assert [b[0] for b in blocks] == ["ours", "peer", "peer", "ours"] * 3  # the lead swaps
    assert len(m.log) == 2 * 2 + 2 * (2 * k - 1) + 12 * k  # warm-up, calibration, pairs
    assert times.candidate_ms == [3 * TICK * 1e3] * 6 and times.baseline_ms == [2 * TICK * 1e3] * 6


@pytest.mark.parametrize("cost_ticks", [1, 64, 4096, 1 << 14])
def test_a_block_lasts_long_enough_at_every_cost(cost_ticks):
    """One tick ~ 1 us (a decode call): thousands of calls; 16384 ticks ~ 16 ms (a large
    shape): one call."""
    m = FakeMachine()
    k = calls_per_block(m.side("a", cost_ticks), m.side("b", 2 * cost_ticks), clock=m.now)
    block = k * cost_ticks * TICK  # the faster side's block
    assert block >= _blocks.MIN_BLOCK_S
    assert k == 1 or (k // 2) * cost_ticks * TICK < _blocks.MIN_BLOCK_S


def test_a_burst_of_other_work_spoils_one_pair_not_the_ratio(monkeypatch):
    m = FakeMachine()
    ours, peer = m.side("ours", 3), m.side("peer", 2)
    k = 512  # the fewest power of two with 2 ticks x k >= 1000 ticks
    start = 2 * sum(2**j for j in range(10))  # calibration: blocks of 1, 2, ... 512 each
    # the burst lands on the peer's block of pair 3 (the peer leads odd pairs)
    m.burst = (start + 6 * k, start + 7 * k - 1, 40)
    monkeypatch.setattr(_bench, "time_pairs",
                        functools.partial(time_pairs, min_block_s=1000 * TICK, clock=m.now))  # fmt: skip
    bench = _bench.Benchmark("b[float32]", "peer", lambda: (ours, peer), target=1.6)
    r = _bench.run_one(bench, warmup=0, repeat=9)
    assert r.calls_per_block == k and len(m.log) == start + 2 * 9 * k
    assert r.ratio == 1.5 and r.spread == (1.5, 1.5) and r.status == "ok"
    assert r.baseline_ms == 2 * TICK * 1e3  # the median per call, the burst set aside
