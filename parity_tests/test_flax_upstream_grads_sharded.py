"""Inside ``shard_map`` our flax layers' gradients equal flax's own bit for bit: the
checks of ``_flax_grad_shard_checks.py``, run in a subprocess with 8 simulated CPU
devices (XLA_FLAGS must be set before jax is imported; the rest of the suite keeps
one device)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _check_script import assert_passed, assert_ran_all, run_checks

pytest.importorskip("jax")

SCRIPT = Path(__file__).with_name("_flax_grad_shard_checks.py")
NAMES = [
    *(
        f"linen-{lay}-{d}"
        for lay in ("batch", "feature")
        for d in ("float32", "bfloat16", "float16")
    ),
    "nnx-batch-bfloat16",
    "nnx-feature-bfloat16",
]


# one worker runs this module, so its module-scoped fixture (a subprocess run or a site
# build) runs once instead of once on each worker
pytestmark = pytest.mark.xdist_group("flax-grads-sharded")


@pytest.fixture(scope="module")
def shard_run():
    return run_checks(SCRIPT, devices=8)


@pytest.mark.parametrize("name", NAMES)
def test_sharded_gradients_are_flax_s(shard_run, name):
    assert_passed(shard_run, name)


def test_the_script_ran_every_check(shard_run):
    assert_ran_all(shard_run, NAMES)
