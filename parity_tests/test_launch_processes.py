"""The launcher leaves no process behind (issue 22 item 11).

A rank's own children die with it on a timeout; SIGTERM or SIGINT to the
launching process kills every rank and what it started before that process
ends. Each rank writes its pid and its child's pid; the test then checks
that none of them is still alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rmsnorm_core import RMSNormError
from rmsnorm_core.backends import launch

# a rank that starts a long-lived child of its own, records both pids, then hangs
HANGS = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
out = os.environ["RMSNORM_OUT"]
with open(os.path.join(out, "pids.tmp"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.replace(os.path.join(out, "pids.tmp"), os.path.join(out, "pids"))
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead: only its parent's wait is missing
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


def _pids(folder: Path, world: int, wait: float = 60.0) -> list[int]:
    files = [folder / f"rank{r}" / "pids" for r in range(world)]
    deadline = time.monotonic() + wait
    while not all(f.exists() for f in files):
        assert time.monotonic() < deadline, "ranks never started"
        time.sleep(0.05)
    return [int(pid) for f in files for pid in f.read_text().split()]


def _all_dead(pids: list[int], wait: float = 10.0) -> list[int]:
    deadline = time.monotonic() + wait
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_a_timeout_kills_what_each_rank_started(tmp_path):
    script = tmp_path / "hangs.py"
    script.write_text(HANGS)
    with pytest.raises(RMSNormError, match="still running after 8 s"):
        launch(str(script), timeout=8, folder=tmp_path / "run")
    pids = _pids(tmp_path / "run", 2, wait=0)
    assert len(pids) == 4
    assert not _all_dead(pids), "a rank or its child outlived the timeout"


# Python's own SIGINT handler, as an interactive process has it: a suite started in the
# background (`pytest &`) inherits SIGINT ignored, and the parent would then ignore it too
PARENT = """
import signal
import sys
from pathlib import Path
signal.signal(signal.SIGINT, signal.default_int_handler)
from rmsnorm_core.backends import launch
launch({script!r}, timeout=300, folder=Path({folder!r}))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_launching_process_kills_every_rank_and_its_children(tmp_path, signum):
    script = tmp_path / "hangs.py"
    script.write_text(HANGS)
    folder = tmp_path / "run"
    code = textwrap.dedent(PARENT.format(script=str(script), folder=str(folder)))
    log = tmp_path / "parent.log"
    with log.open("w") as err:
        parent = subprocess.Popen([sys.executable, "-c", code], stderr=err)
    try:
        pids = _pids(folder, 2)
        parent.send_signal(signum)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    # the parent ends as that signal would end it (an uncaught KeyboardInterrupt too ends
    # Python by SIGINT)
    assert parent.returncode == -signum, log.read_text()
    assert not _all_dead(pids), "a rank or its child outlived the launching process"


def test_a_signal_handler_in_place_before_still_runs(tmp_path):
    script = tmp_path / "hangs.py"
    script.write_text(HANGS)
    folder = tmp_path / "run"
    code = textwrap.dedent(PARENT.format(script=str(script), folder=str(folder)))
    code = "import signal, sys\nsignal.signal(signal.SIGTERM, lambda s, f: sys.exit(7))\n" + code
    log = tmp_path / "parent.log"
    with log.open("w") as err:
        parent = subprocess.Popen([sys.executable, "-c", code], stderr=err)
    try:
        pids = _pids(folder, 2)
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 7, log.read_text()
    assert not _all_dead(pids)


# the signal comes while the last rank is being started (after its Popen, before the
# launch waits on its ranks): on a loaded machine, a rank's start can take that long
SIGNAL_AT_START = """
import os, signal, time
from pathlib import Path
from rmsnorm_core.parity import _launch

class _SignalWhileStarting(_launch._Tail):
    def __init__(self, pipe):
        super().__init__(pipe)
        files = [Path({folder!r}) / f"rank{{r}}" / "pids" for r in range(2)]
        if (Path({folder!r}) / "rank1").exists():  # the last rank's
            while not all(f.exists() for f in files):
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)  # the handler runs here

_launch._Tail = _SignalWhileStarting
_launch.launch({script!r}, timeout=300, folder=Path({folder!r}))
"""


def test_a_signal_while_ranks_start_still_kills_every_one(tmp_path):
    script = tmp_path / "hangs.py"
    script.write_text(HANGS)
    folder = tmp_path / "run"
    code = textwrap.dedent(SIGNAL_AT_START.format(script=str(script), folder=str(folder)))
    parent = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert parent.returncode == -signal.SIGTERM, parent.stderr[-2000:]
    assert not _all_dead(_pids(folder, 2, wait=0)), "a rank outlived the launching process"


LOUD = """
import os, sys
block = b"x" * 1023 + b"\\n"
for _ in range(20 * 1024):  # 20 MiB of output
    sys.stdout.buffer.write(block)
sys.stdout.buffer.write(b"the end\\n")
sys.stdout.flush()
sys.exit(int(os.environ["RMSNORM_RANK"]) * 3)
"""


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_rank_output_is_capped_in_memory_and_never_written_to_disk(tmp_path):
    from rmsnorm_core.parity._launch import OUTPUT_KEPT

    script = tmp_path / "loud.py"
    script.write_text(LOUD)
    with pytest.raises(RMSNormError, match="rank 1 exited with code 3: the end"):
        launch(str(script), timeout=60, folder=tmp_path / "run")
    assert _size(tmp_path / "run") == 0
    done = launch(str(script), world=1, timeout=60, folder=tmp_path / "one")
    assert len(done.outputs[0]) == OUTPUT_KEPT and done.outputs[0].endswith("the end\n")
    assert _size(tmp_path / "one") == 0


def test_a_failed_launch_removes_the_temporary_folder_it_made(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    script = tmp_path / "loud.py"
    script.write_text(LOUD)
    with pytest.raises(RMSNormError, match="rank 1 exited"):
        launch(str(script), timeout=60)
    assert not list((tmp_path / "tmp").iterdir())
