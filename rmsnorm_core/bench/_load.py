"""``rmsnorm bench --load N``: N busy processes share the cores while the cases run.

Kernels on a shared machine meet other processes; a kernel whose threads wait for each
other at many barriers collapses when one of them is descheduled. This measures that:
each competitor is a Python process spinning in a loop, started before the first case
and stopped (SIGKILL to its process group) when the run ends, however it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

MAX_LOAD = 64

_SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def competing_processes(count: int) -> Iterator[list[int]]:
    """Run ``count`` busy processes inside the ``with`` block; yields their pids."""
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _SPIN],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()
