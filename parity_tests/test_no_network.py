"""Local multi-process launches need no network: run in a network namespace whose
hostname resolves to nothing (as in ``docker run --network none``), JAX's gloo
collectives bind to the loopback address like the rest of the launch.

Needs root and ``unshare``/``ip``/``mount`` (skipped elsewhere, e.g. inside the image).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def _isolated_shell_works() -> bool:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "ip", "mount")):
        return False
    probe = subprocess.run(["unshare", "-nmu", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _isolated_shell_works(), reason="needs root and unshare -nmu")
def test_jax_two_processes_run_without_a_network_or_a_resolvable_hostname(tmp_path):
    pytest.importorskip("jax")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    verify = f"{sys.executable} -m rmsnorm_core verify --distributed --backend jax-2procs"
    script = (
        f"ip link set lo up && mount --bind {hosts} /etc/hosts && hostname no-such-host && "
        f"{verify} --preset llama"
    )
    done = subprocess.run(
        ["unshare", "-nmu", "sh", "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "0 failed" in done.stdout
