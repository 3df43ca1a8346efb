"""A bench case's callables are one call each, and what it is timed under (one thread,
grad mode) is set once around the timing (``Benchmark.around``): the decode cases
looped 200 calls inside each callable, so their per-call times read 200x too long and
``calls/block`` said 1 where thousands of forwards ran (found by a hostile probe)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from rmsnorm_core.bench._bench import Benchmark, run_one


def test_around_is_entered_once_and_every_call_runs_inside_it():
    state = {"inside": False, "entered": 0, "outside_calls": 0}

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        state["entered"] += 1
        state["inside"] = True
        try:
            yield
        finally:
            state["inside"] = False

    def call() -> None:
        state["outside_calls"] += not state["inside"]

    bench = Benchmark("fake", "itself", lambda: (call, call), 1.0, (), around)
    result = run_one(bench, warmup=1, repeat=3)
    assert result.status in ("ok", "unsettled", "over target"), result.status
    assert state == {"inside": False, "entered": 1, "outside_calls": 0}


def test_a_decode_callable_is_one_forward_at_one_thread():
    torch = pytest.importorskip("torch")
    from rmsnorm_torch.nn._modules import RMSNorm
    from rmsnorm_torch.plugins._benchmarks_decode import decode_benchmarks

    cases = [b for b in decode_benchmarks() if b.name.startswith("torch.decode.torch.")]
    assert len(cases) == 8
    forwards = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: forwards.append((type(m), torch.get_num_threads()))
    )
    threads = torch.get_num_threads()
    try:
        for bench in cases:
            ours, peer = bench.setup()
            with bench.around():
                forwards.clear()
                ours()
                assert forwards == [(RMSNorm, 1)], bench.name
                forwards.clear()
                peer()
                assert forwards == [(torch.nn.RMSNorm, 1)], bench.name
                assert torch.is_grad_enabled() == ("backward" in bench.name)
            assert torch.get_num_threads() == threads
    finally:
        hook.remove()
