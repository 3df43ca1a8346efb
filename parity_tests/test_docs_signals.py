"""``rmsnorm docs`` stopped by SIGTERM, SIGHUP or Ctrl-C, during the build or while
serving: its temporary site folder is removed, its mkdocs process (and whatever that
started) is stopped, and Ctrl-C during the build is one line, exit 130 (issue 30
item 10). A stand-in ``mkdocs`` (first on PYTHONPATH) keeps the build slow or fast
at will, so that a signal lands in the phase under test."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FAKE_MKDOCS = """
import os, sys, time
from pathlib import Path

site = Path(sys.argv[sys.argv.index("--site-dir") + 1])
site.mkdir(parents=True, exist_ok=True)
(site / "index.html").write_text("<html>stand-in</html>")
grandchild = os.fork()  # a process of its own, as a plugin's helper would be
if grandchild == 0:
    time.sleep(60)
    os._exit(0)
Path(os.environ["FAKE_MKDOCS_PIDS"]).write_text(f"{os.getpid()} {grandchild}")
time.sleep(float(os.environ["FAKE_MKDOCS_SECONDS"]))
os.kill(grandchild, 9)
os.waitpid(grandchild, 0)
"""

# the command as a user's shell starts it: SIGINT and SIGHUP in their default course
# (a test runner may have set them to ignored, which a child inherits)
START = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "signal.signal(signal.SIGHUP, signal.SIG_DFL); "
    "from rmsnorm_core.cli._cli import main; sys.exit(main(sys.argv[1:]))"
)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gone(pid, within=10.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        state = Path(f"/proc/{pid}/stat")
        if state.exists() and state.read_text().rsplit(")", 1)[-1].split()[0] == "Z":
            return True  # exited; its parent (init, not the command) reaps it
        time.sleep(0.05)
    return False


def _start(tmp_path, build_seconds):
    fake = tmp_path / "fake" / "mkdocs"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAKE_MKDOCS)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT)]),
        "TMPDIR": str(tmp),
        "FAKE_MKDOCS_PIDS": str(tmp_path / "pids"),
        "FAKE_MKDOCS_SECONDS": str(build_seconds),
    }
    argv = [sys.executable, "-c", START, "docs", "--port", str(_free_port())]
    out = (tmp_path / "out").open("w")
    err = (tmp_path / "err").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=tmp_path)
    out.close()
    err.close()
    return proc, tmp


def _wait_for(proc, what, tmp_path):
    deadline = time.monotonic() + 60
    while not what():
        assert proc.poll() is None, (tmp_path / "err").read_text()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


PHASES = [
    ("build", signal.SIGTERM),
    ("build", signal.SIGHUP),
    ("serve", signal.SIGTERM),
    ("serve", signal.SIGHUP),
]


@pytest.mark.parametrize(
    "phase,signum", PHASES, ids=[f"{p}-{signal.Signals(s).name}" for p, s in PHASES]
)
def test_a_stop_signal_removes_the_site_and_stops_mkdocs(tmp_path, phase, signum):
    proc, tmp = _start(tmp_path, build_seconds=60 if phase == "build" else 0)
    pids = tmp_path / "pids"
    try:
        if phase == "build":
            _wait_for(proc, lambda: pids.exists() and pids.read_text(), tmp_path)
        else:
            _wait_for(proc, lambda: "serving" in (tmp_path / "out").read_text(), tmp_path)
        assert list(tmp.glob("rmsnorm-docs-*")), "the site folder was not made"
        proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signum, (tmp_path / "err").read_text()
    assert not list(tmp.glob("rmsnorm-docs-*")), "the site folder was left behind"
    for pid in map(int, pids.read_text().split()):
        assert _gone(pid), f"mkdocs process {pid} outlived the command"


def test_ctrl_c_during_the_build_is_one_line_and_exit_130(tmp_path):
    proc, tmp = _start(tmp_path, build_seconds=60)
    pids = tmp_path / "pids"
    try:
        _wait_for(proc, lambda: pids.exists() and pids.read_text(), tmp_path)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    err = (tmp_path / "err").read_text()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert re.fullmatch(r"building the site .*\nrmsnorm docs: interrupted \(Ctrl-C\)\n", err), err
    assert not list(tmp.glob("rmsnorm-docs-*"))
    for pid in map(int, pids.read_text().split()):
        assert _gone(pid), f"mkdocs process {pid} outlived the command"
