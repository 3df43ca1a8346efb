"""Stop signals as exceptions, so that every command cleans up when it is stopped.

SIGTERM (what ``timeout``, ``docker stop`` and CI send) and SIGHUP (a closed
terminal) end a Python process at once by default: no ``finally`` runs, so a
temporary folder stays behind and a child process goes on alone. While a
command runs, :func:`stop_signals_unwind` turns the first of them into
:class:`Stopped`, which unwinds the command like Ctrl-C's ``KeyboardInterrupt``
(every ``finally`` and ``with`` cleans up); :func:`rmsnorm_core.cli.main` then
gives the signal its usual course.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals that stop a command the way Ctrl-C does."""


class Stopped(BaseException):
    """A stop signal arrived. A ``BaseException``, like ``KeyboardInterrupt``: an
    ``except Exception`` that reports a failed case and goes on does not swallow it.

    Attributes:
        signum: the signal.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_unwind() -> Iterator[None]:
    """While inside, the first of :data:`STOP_SIGNALS` raises :class:`Stopped` and the
    rest are ignored, so that the cleanup it starts runs to its end; a signal ignored
    on entry (``nohup``) stays ignored. The handlers before are back on exit. Outside
    the main thread no handler can be set, and the signals keep their course."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)
        raise Stopped(signum)

    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s, handler in before.items():
        if handler is not signal.SIG_IGN:
            signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def take_usual_course(stopped: Stopped) -> int:
    """After the cleanup: deliver the signal again to the handler in place before (by
    default the process ends by it); if that handler returns, the exit status for it."""
    signal.raise_signal(stopped.signum)
    return 128 + stopped.signum
