"""The Flax layer on 8 simulated CPU devices: NamedSharding under jit, and shard_map
with the normalized axis split (local sum of squares + one psum, no all-gather).

XLA_FLAGS must be set before jax is imported, so the checks run in a
subprocess (``_flax_sharding_checks.py``) and the rest of the suite keeps one
device.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")

SCRIPT = Path(__file__).with_name("_flax_sharding_checks.py")


@pytest.fixture(scope="module")
def sharding_run():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=SCRIPT.parent,
    )


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
    assert f"PASS {name}\n" in sharding_run.stdout, (
        f"check {name} did not pass:\n{sharding_run.stdout[-2000:]}\n{sharding_run.stderr[-4000:]}"
    )


def test_the_script_ran_every_check(sharding_run):
    assert sharding_run.returncode == 0, sharding_run.stderr[-4000:]
    assert sharding_run.stdout.count("PASS ") == len(_names())
