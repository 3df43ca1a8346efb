"""Run one Python module as N local processes on 127.0.0.1, bounded in time.

Used by the backends' distributed runners and by the test suite: each
process gets ``RMSNORM_RANK``, ``RMSNORM_WORLD``, ``RMSNORM_PORT`` (a port
that was free when chosen) and ``RMSNORM_OUT`` (a folder for its results) in
its environment. A process that fails, or a peer that hangs past
``timeout``, ends the whole group: every process is killed and the error
names which rank failed and the tail of its output, so nothing waits
forever and CI never hangs.

Each rank runs in its own process group (its own session), so "killed"
includes whatever the rank started itself; a launch ends with every rank's
group killed, whether it passed, failed, timed out or was interrupted.
SIGTERM to the launching process (what ``timeout`` and CI send) and SIGINT
(Ctrl-C, which no longer reaches ranks outside the terminal's group) kill
the ranks' groups first, then take their usual course (the handler that was
in place before runs, or the default: the process ends by that signal).
Signal handlers can only be set from the main thread; a launch from another
thread still kills the groups on timeout and failure.

A port taken between choosing and binding fails that launch with the peer's
message; callers may retry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from rmsnorm_core.spec._errors import RMSNormError

OUTPUT_KEPT = 1024 * 1024
"""Bytes of each rank's output the launch keeps in memory (its last ones)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Launch:
    """The outcome of a launch: each rank's output folder and its text output.

    Attributes:
        folder: the launch's folder; rank ``r`` writes under ``folder/rank<r>``.
        outputs: each rank's stdout and stderr, in rank order.
    """

    folder: Path
    outputs: tuple[str, ...]

    def rank_folder(self, rank: int) -> Path:
        """The folder rank ``rank`` was given as ``RMSNORM_OUT``."""
        return self.folder / f"rank{rank}"


_PORT_TAKEN = ("Address already in use", "EADDRINUSE", "address in use")


def launch(
    module: str,
    args: Sequence[str] = (),
    *,
    world: int = 2,
    timeout: float = 300.0,
    env: Mapping[str, str] | None = None,
    folder: Path | None = None,
) -> Launch:
    """Run ``python -m module *args`` (or the script, for a ``.py`` path) as ``world``
    processes; return when all exit 0. A launch whose port was taken meanwhile
    is retried (twice) on a new port.

    Without ``folder``, a fresh temporary folder is made: the caller's to remove once
    returned, removed here when the launch fails. Each rank's output (stdout and stderr
    together) is kept in memory, its last ``OUTPUT_KEPT`` bytes; nothing is written to disk.

    Raises:
        RMSNormError: a process exited non-zero, or the group ran past ``timeout``
            seconds (naming the rank and the tail of its output).
    """
    root = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="rmsnorm-launch-"))
    try:
        for attempt in range(3):
            try:
                with _signals_kill_ranks() as stop:
                    return _launch_once(module, args, world, timeout, env, root, stop)
            except RMSNormError as err:
                if attempt == 2 or not any(text in str(err) for text in _PORT_TAKEN):
                    raise
        raise AssertionError("unreachable")
    except BaseException:  # a folder it made is the caller's only once it is returned
        if folder is None:
            shutil.rmtree(root, ignore_errors=True)
        raise


class _Tail:
    """The last ``OUTPUT_KEPT`` bytes a rank writes to its pipe, read as they come by a
    thread: a rank printing gigabytes costs that much memory here and nothing on disk."""

    def __init__(self, pipe) -> None:
        self._pipe, self._kept = pipe, bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while chunk := self._pipe.read1(1 << 16):
            self._kept += chunk
            if len(self._kept) > 2 * OUTPUT_KEPT:  # trimmed now and then, not per chunk
                del self._kept[:-OUTPUT_KEPT]

    def text(self) -> str:
        """What was kept, decoded with replacement (any bytes a rank prints are not an error).
        Waits for the pipe to close: the caller has killed the rank's group."""
        self._thread.join(timeout=10)  # a process that left the group may hold the pipe open
        self._pipe.close()
        return bytes(self._kept[-OUTPUT_KEPT:]).decode("utf-8", errors="replace")


class _Stop:
    """The first SIGTERM or SIGINT a launch received (``signum`` None: none yet)."""

    signum: int | None = None


@contextlib.contextmanager
def _signals_kill_ranks() -> Iterator[_Stop]:
    """While a launch runs, SIGTERM and SIGINT are noted, not raised: the launch sees the
    note, stops starting ranks and kills the groups of those it started; afterwards the
    previous handlers are back and the signal is delivered again.

    Noted, because an exception raised by a handler lands wherever the main thread is:
    between starting a rank and the ``try`` that kills it (a loaded machine left both
    ranks of a test running that way), or inside that cleanup, if a second signal came."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def note(signum: int, frame: object) -> None:
        if stop.signum is None:
            stop.signum = signum

    before = {sig: signal.signal(sig, note) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        if stop.signum is not None:
            signal.raise_signal(stop.signum)  # its usual course, now the ranks are gone
            name = signal.Signals(stop.signum).name  # the handler before returned (or ignores it)
            raise RMSNormError(f"launch interrupted by {name}; its ranks were killed") from None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc``'s process group: the rank and anything it started that is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _launch_once(
    module: str,
    args: Sequence[str],
    world: int,
    timeout: float,
    env: Mapping[str, str] | None,
    root: Path,
    stop: _Stop,
) -> Launch:
    port = free_port()
    procs: list[subprocess.Popen] = []
    logs: list[_Tail] = []
    failed: str | None = None
    try:  # from the first rank on: every rank started is killed, whatever happens
        for rank in range(world):
            if stop.signum is not None:
                break
            out = root / f"rank{rank}"
            out.mkdir(parents=True, exist_ok=True)
            child_env = dict(os.environ, **(env or {}))
            child_env.update(
                RMSNORM_RANK=str(rank), RMSNORM_WORLD=str(world), RMSNORM_PORT=str(port),
                RMSNORM_OUT=str(out), PYTHONUNBUFFERED="1",
            )  # fmt: skip
            proc = subprocess.Popen(
                [sys.executable, *([module] if module.endswith(".py") else ["-m", module]), *args],
                env=child_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: killed with everything it starts
            )
            procs.append(proc)
            logs.append(_Tail(proc.stdout))
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            if stop.signum is not None:
                failed = f"interrupted by signal {stop.signum}"
                break
            bad = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
            if bad:
                failed = f"rank {bad[0]} exited with code {procs[bad[0]].returncode}"
                break
            if time.monotonic() > deadline:
                hung = [i for i, p in enumerate(procs) if p.poll() is None]
                failed = f"rank(s) {hung} still running after {timeout:.0f} s (a hung peer?)"
                break
            time.sleep(0.05)
        bad = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
        if failed is None and bad:
            failed = f"rank {bad[0]} exited with code {procs[bad[0]].returncode}"
    finally:
        for p in procs:  # the group even after a clean exit: nothing a rank started outlives it
            _kill_group(p)
            p.wait()
        outputs = [log.text() for log in logs]
    if failed is not None:
        rank = next((i for i, p in enumerate(procs) if p.returncode not in (0, -9)), 0)
        lines = outputs[rank].strip().splitlines() or ["(no output)"]
        if any(text in "".join(outputs) for text in _PORT_TAKEN):
            failed += " (port taken: " + next(t for t in _PORT_TAKEN if t in "".join(outputs)) + ")"
        tail = "\n".join(lines[-15:])
        raise RMSNormError(
            f"{world}-process run of {module} failed: {failed}: {lines[-1][-200:]}\n"
            f"rank {rank}'s last lines:\n{tail}"
        )
    return Launch(root, tuple(outputs))
