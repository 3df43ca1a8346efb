"""Check scripts run in a subprocess (flags JAX reads at import: simulated devices, x64):
each prints ``PASS name`` per check that passes and ``FAIL name: why`` otherwise; the
tests assert each expected name passed and that the script ran them all."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def run_checks(script: Path, *, devices: int | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (beside the tests), with ``devices`` simulated CPU devices if given."""
    env = dict(os.environ)
    if devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=script.parent)  # fmt: skip


def assert_passed(run: subprocess.CompletedProcess[str], name: str) -> None:
    """The check ``name`` printed PASS."""
    assert f"PASS {name}\n" in run.stdout, (
        f"check {name} did not pass:\n{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    )


def assert_ran_all(run: subprocess.CompletedProcess[str], names: Sequence[str]) -> None:
    """The script exited 0 having passed exactly as many checks as ``names``."""
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout.count("PASS ") == len(names)
