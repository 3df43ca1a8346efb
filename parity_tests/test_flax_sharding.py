"""The Flax layer on 8 simulated CPU devices: NamedSharding under jit, and shard_map
with the normalized axis split (local sum of squares + one psum, no all-gather).

XLA_FLAGS must be set before jax is imported, so the checks run in a
subprocess (``_flax_sharding_checks.py``) and the rest of the suite keeps one
device.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _check_script import assert_passed, assert_ran_all, run_checks

pytest.importorskip("jax")

SCRIPT = Path(__file__).with_name("_flax_sharding_checks.py")


# one worker runs this module, so its module-scoped fixture (a subprocess run or a site
# build) runs once instead of once on each worker
pytestmark = pytest.mark.xdist_group("flax-sharding")


@pytest.fixture(scope="module")
def sharding_run():
    return run_checks(SCRIPT, devices=8)


def _names():
    names = [
        f"jit-{d}-{n}"
        for d in ("float32", "bfloat16", "float16")
        for n in ("batch", "feature", "both")
    ]
    names += [
        f"shard_map-{d}-{p}"
        for d in ("float32", "bfloat16", "float16")
        for p in ("llama", "gemma", "paper")
    ]
    return names + ["partial-refused", "linen-shard_map"]


@pytest.mark.parametrize("name", _names())
def test_sharded_equals_unsharded(sharding_run, name):
    assert_passed(sharding_run, name)


def test_the_script_ran_every_check(sharding_run):
    assert_ran_all(sharding_run, _names())
