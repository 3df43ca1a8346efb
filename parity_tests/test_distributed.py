"""Scale-out on this machine: 2 local processes (gloo for torch, jax.distributed for JAX).

Each group of checks runs in one launch (``rmsnorm_core.backends.launch``):
bounded in time, every process killed on a failure or a hang, the failing
rank's output in the message. The checks themselves are in
``_torch_dist_checks.py``, ``_torch_dist_training.py`` and ``_jax_dist_checks.py``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("jax")
# one worker runs this module: its module-scoped launches then run once
pytestmark = pytest.mark.xdist_group("distributed")

from rmsnorm_core import RMSNormError  # noqa: E402
from rmsnorm_core.backends import launch  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402

HERE = Path(__file__).resolve().parent
TORCH_CHECKS = [
    "layouts",
    "residual-and-refusals",
    "sequence-parallel",
    "ddp",
    "fsdp2",
    "fsdp2-mixed-precision",
]
JAX_CHECKS = [
    f"{k}-{lay}-{d}"
    for k in ("linen", "nnx")
    for lay in ("batch", "feature")
    for d in ("float32", "bfloat16", "float16")
]


def _run(script, checks, **kw):
    try:
        done = launch(str(HERE / script), checks, timeout=300, **kw)
    except RMSNormError as err:
        return str(err)
    shutil.rmtree(done.folder)  # a returned launch's folder is the caller's to remove
    return done.outputs[0]


@pytest.fixture(scope="module")
def torch_output():
    return _run("_torch_dist_checks.py", TORCH_CHECKS)


@pytest.fixture(scope="module")
def jax_output():
    from rmsnorm_flax.plugins._distributed_runner import ENV

    return _run("_jax_dist_checks.py", JAX_CHECKS, env=ENV)


@pytest.mark.parametrize("check", TORCH_CHECKS)
def test_torch_two_processes(check, torch_output):
    assert f"PASS {check}" in torch_output, torch_output[-3000:]


@pytest.mark.parametrize("check", JAX_CHECKS)
def test_jax_two_processes(check, jax_output):
    assert f"PASS {check}" in jax_output, jax_output[-3000:]


def _isolated_shell_works() -> bool:
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("unshare", "ip", "mount")):
        return False
    probe = subprocess.run(["unshare", "-nmu", "true"], capture_output=True)
    return probe.returncode == 0


def _without_a_network(command: list[str], tmp_path: Path) -> list[str]:
    """``command`` in a network namespace with only the loopback device and a hostname that
    resolves to nothing (as in ``docker run --network none``), where this machine can make
    one (root and ``unshare``/``ip``/``mount``); unchanged elsewhere (e.g. inside the image)."""
    if not _isolated_shell_works():
        return command
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    script = (
        f"ip link set lo up && mount --bind {hosts} /etc/hosts && hostname no-such-host && "
        f"exec {shlex.join(command)}"
    )
    return ["unshare", "-nmu", "sh", "-c", script]


def test_verify_distributed_lists_its_rows_and_needs_no_network(tmp_path):
    # Local multi-process launches need no network: torch's gloo and JAX's collectives bind
    # to the loopback address like the rest of the launch. One verify run checks both.
    report = tmp_path / "r.json"
    # the multi-process runners only: every in-process runner's rows are checked elsewhere
    # (test_verify.py), and each one here added its own matrix to this launch (~12 s)
    runners = ["torch-dtensor-2procs", "jax-2procs"]
    command = [sys.executable, "-m", "rmsnorm_core", "verify", "--distributed"]
    command += ["--preset", "gemma", "--report", str(report)]
    command += [f"--backend={name}" for name in runners]
    done = subprocess.run(
        _without_a_network(command, tmp_path), capture_output=True, text=True, timeout=600
    )
    out = done.stdout
    assert done.returncode == 0, (out + done.stderr)[-3000:]
    for runner in runners:  # each runner's own rows: one per dtype, each passed
        rows = [ln for ln in out.splitlines() if re.match(rf"{runner}\s+(float|bfloat)", ln)]
        assert len(rows) == 3 and all(re.search(r"\d+ fwd.*\s+PASS\s", ln) for ln in rows), out
    # and the cross-framework check between the two: torch's sharded output against JAX's
    versus = [ln for ln in out.splitlines() if ln.startswith("torch-dtensor-2procs vs jax-2procs")]
    assert len(versus) == 3 and all(re.search(r"\d+ vs\s+PASS\s", ln) for ln in versus), out
    backends = {r["runner"] for r in json.loads(report.read_text())["records"]}
    assert {"torch-dtensor-2procs", "jax-2procs"} <= backends


def test_without_distributed_the_multiprocess_rows_do_not_run(capsys):
    assert main(["verify", "--quick", "--preset", "torch", "--backend", "torch"]) == 0
    assert "2procs" not in capsys.readouterr().out


HANG = """
import os, time
if os.environ["RMSNORM_RANK"] == "1":
    time.sleep(600)
"""
FAIL = """
import os, sys
if os.environ["RMSNORM_RANK"] == "1":
    print("rank 1 cannot bind port", os.environ["RMSNORM_PORT"])
    sys.exit(3)
"""


def test_a_hung_peer_fails_the_launch_with_a_message(tmp_path):
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    start = time.monotonic()
    with pytest.raises(
        RMSNormError, match=r"rank\(s\) \[1\] still running after 3 s \(a hung peer\?\)"
    ):
        launch(str(script), timeout=3)
    assert time.monotonic() - start < 20


def test_a_failing_rank_fails_the_launch_with_its_output(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(FAIL)
    with pytest.raises(
        RMSNormError, match=r"rank 1 exited with code 3: rank 1 cannot bind port \d+"
    ):
        launch(str(script), timeout=30)


NOT_UTF8 = """
import os, sys
sys.stdout.buffer.write(b"before \\xff\\xfe bytes that are not UTF-8\\n")
sys.stdout.flush()
if os.environ["RMSNORM_RANK"] == "1":
    sys.exit(4)
"""


def test_a_rank_printing_bytes_that_are_not_utf8_fails_with_its_output(tmp_path):
    script = tmp_path / "bytes.py"
    script.write_text(NOT_UTF8)
    with pytest.raises(RMSNormError, match=r"rank 1 exited with code 4: before \ufffd\ufffd bytes"):
        launch(str(script), timeout=30)


def test_launch_problems_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    from rmsnorm_core import RMSNormSpec
    from rmsnorm_core.testing import launch_problems, make_problem

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    problem = make_problem(RMSNormSpec.preset("llama"), "float32", (4, 16))
    # one child process: the folder is the launcher's at any world size
    outcomes = launch_problems(
        "rmsnorm_torch.plugins._fallback_runner", [problem], world=1, timeout=300
    )
    assert len(outcomes) == 1
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())  # problems and launch folders
