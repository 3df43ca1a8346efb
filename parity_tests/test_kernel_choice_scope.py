"""use_kernel is scoped to the calling context: a thread or an asyncio task; never
process-global, never left behind (contextvars, not threading.local)."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("torch")

from rmsnorm_torch import use_kernel  # noqa: E402
from rmsnorm_torch.kernels._kernel_choice import current_kernel  # noqa: E402


def test_two_asyncio_tasks_keep_their_own_choice():
    """a enters, b enters; a reads while b's block is open, then leaves; b reads after."""
    seen = {}

    async def main():
        a_in, b_in, a_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def task_a():
            with use_kernel("graph"):
                a_in.set()
                await b_in.wait()
                seen["a"] = current_kernel()
            a_done.set()

        async def task_b():
            await a_in.wait()
            with use_kernel("blocked"):
                b_in.set()
                await a_done.wait()
                seen["b"] = current_kernel()

        await asyncio.gather(task_a(), task_b())
        return current_kernel()

    after = asyncio.run(main())
    assert seen == {"a": "graph", "b": "blocked"}
    assert after == "auto" and current_kernel() == "auto"


def test_a_generator_leaves_no_choice_behind_once_closed():
    """Generators run in their caller's context (PEP 567): while suspended inside the
    block the choice is visible to the caller, which ``use_kernel`` documents; closing
    or finishing the generator restores the caller's choice."""

    def forced():
        with use_kernel("graph"):
            yield current_kernel()
            yield current_kernel()

    gen = forced()
    assert next(gen) == "graph"
    gen.close()
    assert current_kernel() == "auto"
    assert list(forced()) == ["graph", "graph"] and current_kernel() == "auto"
