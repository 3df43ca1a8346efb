"""Inside ``shard_map`` our flax layers' gradients equal flax's own bit for bit: the
checks of ``_flax_grad_shard_checks.py``, run in a subprocess with 8 simulated CPU
devices (XLA_FLAGS must be set before jax is imported; the rest of the suite keeps
one device)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def shard_run():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    return subprocess.run(
        [sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=SCRIPT.parent,
    )


@pytest.mark.parametrize("name", NAMES)
def test_sharded_gradients_are_flax_s(shard_run, name):
    assert f"PASS {name}\n" in shard_run.stdout, (
        f"check {name} did not pass:\n{shard_run.stdout[-2000:]}\n{shard_run.stderr[-4000:]}"
    )


def test_the_script_ran_every_check(shard_run):
    assert shard_run.returncode == 0, shard_run.stderr[-4000:]
    assert shard_run.stdout.count("PASS ") == len(NAMES)
