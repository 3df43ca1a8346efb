"""The build folder's lock: a builder that dies holding it leaves nothing to wait for.

Every process builds or loads the native operator while holding an advisory ``flock``
on the folder (``_build_lock.folder_held``); the kernel releases it when its holder dies,
and torch's own lock file, which a killed builder leaves behind, is then removed.
Before it, a leftover lock file made the first call wait up to 600 s, then load a
library that was never built, and fall back to the Python kernel for the process.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("torch")
fcntl = pytest.importorskip("fcntl")

from rmsnorm_torch.kernels._build_lock import FOLDER_LOCK, folder_held  # noqa: E402

HOLD = f"""
import fcntl, os, sys, time
handle = open(os.path.join(sys.argv[1], {FOLDER_LOCK!r}), "a")
fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
open(os.path.join(sys.argv[1], "lock"), "w").close()  # torch's build lock, as mid-build
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


@contextlib.contextmanager
def _holder(folder, seconds: float) -> Iterator[subprocess.Popen]:
    """A process holding the folder (and torch's lock file), killed at the block's end."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout.readline().strip() == "held"
            yield child
        finally:
            child.kill()


def test_a_builder_killed_mid_build_leaves_nothing_to_wait_for(tmp_path):
    with _holder(tmp_path, 600) as child:
        child.kill()
        child.wait()
        assert (tmp_path / "lock").exists()
        start = time.monotonic()
        with folder_held(str(tmp_path), time.monotonic() + 60) as held:
            assert held and not (tmp_path / "lock").exists()
        assert time.monotonic() - start < 5


def test_a_live_builder_is_waited_for_and_its_lock_kept(tmp_path):
    with _holder(tmp_path, 600):
        start = time.monotonic()
        with folder_held(str(tmp_path), time.monotonic() + 1.0) as held:
            assert not held  # the deadline passed while the holder lived
        assert time.monotonic() - start >= 1.0
        assert (tmp_path / "lock").exists()  # a live builder's lock is never removed


def test_the_next_process_waits_for_the_holder_then_takes_the_folder(tmp_path):
    with _holder(tmp_path, 2.0) as child:
        start = time.monotonic()
        with folder_held(str(tmp_path), time.monotonic() + 60) as held:
            assert held and time.monotonic() - start > 1.5  # taken once the holder ended
            assert child.wait(timeout=10) == 0


def test_a_folder_that_cannot_be_written_is_an_error_not_a_wait(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OSError):
            with folder_held(str(tmp_path), time.monotonic() + 60):
                pass
    finally:
        tmp_path.chmod(0o700)


def test_a_lock_that_is_a_link_or_a_fifo_is_refused_at_once(tmp_path):
    """Never through a link (nothing outside the folder is created or locked), never
    blocked on a FIFO: either is an error, which the build reports and falls back on."""
    outside = tmp_path / "outside"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / FOLDER_LOCK).symlink_to(outside)  # dangling: open would create it
    with pytest.raises(OSError):
        with folder_held(str(folder), time.monotonic() + 60):
            pass
    assert not outside.exists()
    (folder / FOLDER_LOCK).unlink()
    os.mkfifo(folder / FOLDER_LOCK)
    start = time.monotonic()
    with pytest.raises(OSError):
        with folder_held(str(folder), time.monotonic() + 60):
            pass
    assert time.monotonic() - start < 5


def test_an_interrupted_first_call_leaves_the_build_to_the_next_call(tmp_path, monkeypatch):
    """Ctrl-C while the first call waits for the build: the builder thread keeps the
    folder and goes on; the next call waits for that same build (one build, not a
    second beside it that would load a library not yet written)."""
    import _thread
    import shutil
    import threading

    from rmsnorm_torch.kernels import _cpu_op

    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler: the build is not attempted")
    loads = []

    def slow_load(name, directory, flags, errors):
        loads.append(name)
        time.sleep(2.0)
        loads.append("done")

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("RMSNORM_NATIVE", raising=False)
    monkeypatch.setattr(_cpu_op, "_load", slow_load)
    monkeypatch.setattr(_cpu_op, "_BUILDERS", {})
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        _cpu_op._build()
    assert _cpu_op._build() == ""
    assert loads == [loads[0], "done"]  # one build, waited for to its end


def _fake_builds(monkeypatch, tmp_path, outcomes):
    """``_build`` with a fake load per attempt (its error, or "" for success), each 1 s."""
    import shutil

    from rmsnorm_torch.kernels import _cpu_op

    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler: the build is not attempted")
    attempts = []

    def load(name, directory, flags, errors):
        time.sleep(1.0)
        error = outcomes[len(attempts)]
        attempts.append(error)
        if error:
            errors.append(error)

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("RMSNORM_NATIVE", raising=False)
    monkeypatch.setattr(_cpu_op, "_load", load)
    monkeypatch.setattr(_cpu_op, "_BUILDERS", {})
    monkeypatch.setattr(_cpu_op, "_INTERRUPTED", set())
    return _cpu_op, attempts


@pytest.mark.parametrize("interrupted", [True, False])
def test_a_build_failed_after_an_interrupt_is_started_once_more(tmp_path, monkeypatch, interrupted):
    """A terminal's Ctrl-C reaches the compiler too: a build that fails after its caller
    was interrupted is started again by the next call; a failure without one is final."""
    import _thread
    import threading

    stopped = "the build failed: ninja: build stopped: interrupted by user."
    cpu_op, attempts = _fake_builds(monkeypatch, tmp_path, [stopped, ""])
    children = []  # the retry builds in a child process (torch builds a name once per process)
    monkeypatch.setattr(cpu_op.subprocess, "run", lambda argv, **kw: children.append(argv))
    if interrupted:
        threading.Timer(0.3, _thread.interrupt_main).start()
        with pytest.raises(KeyboardInterrupt):
            cpu_op._build()
        assert cpu_op._build() == "" and attempts == [stopped, ""] and len(children) == 1
    else:
        assert cpu_op._build() == stopped
        assert cpu_op._build() == stopped and attempts == [stopped] and not children


def test_a_dead_builders_compilers_are_waited_for(tmp_path):
    """A builder that died mid-build leaves torch's lock and, as orphans, its ninja and
    compiler working in the folder: the next holder waits for them to end before it
    removes the lock and builds (two builds would write the same files)."""
    from rmsnorm_torch.kernels._build_lock import compiling_in

    if not os.path.isdir("/proc"):
        pytest.skip("no /proc: processes' folders cannot be read")
    (tmp_path / "lock").write_text("")
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"], cwd=tmp_path)
    try:
        assert compiling_in(str(tmp_path))
        start = time.monotonic()
        with folder_held(str(tmp_path), time.monotonic() + 60) as held:
            assert held and orphan.poll() is not None and not (tmp_path / "lock").exists()
        assert time.monotonic() - start > 1.0
    finally:
        orphan.kill()
        orphan.wait()
    assert not compiling_in(str(tmp_path))
