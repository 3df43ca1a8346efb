"""Every ``rmsnorm`` command unwinds on SIGTERM and SIGHUP as on Ctrl-C: its ``finally``
blocks run (temporary folders, child processes), an ``except Exception`` that reports a
failed case does not swallow the signal, then the signal takes its usual course; a
signal ignored on entry (``nohup``) stays ignored; Ctrl-C is one line, exit 130."""

from __future__ import annotations

import signal

import pytest

from rmsnorm_core.cli import _cli
from rmsnorm_core.cli._cli import main


@pytest.fixture
def handler_before():
    """The handlers in place before ``main``: record the signal instead of ending pytest."""
    events = []
    before = {s: signal.signal(s, lambda n, f: events.append(f"usual course {n}")) for s in
              (signal.SIGTERM, signal.SIGHUP)}  # fmt: skip
    yield events
    for s, h in before.items():
        signal.signal(s, h)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_unwinds_the_command_then_takes_its_course(
    signum, handler_before, monkeypatch
):
    events = handler_before

    def command(args):
        try:
            try:
                signal.raise_signal(signum)
            except Exception:  # a command's "report the failure and go on"
                events.append("swallowed")
            events.append("went on")
        finally:
            events.append("cleaned up")
        return 0

    monkeypatch.setattr(_cli, "_cmd_presets", command)
    assert main(["presets"]) == 128 + signum
    assert events == ["cleaned up", f"usual course {signum}"]
    assert signal.getsignal(signum) is not signal.SIG_IGN  # the handler before is back


def test_a_stop_signal_ignored_on_entry_stays_ignored(handler_before, monkeypatch):
    events = handler_before
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup

    def command(args):
        signal.raise_signal(signal.SIGHUP)
        events.append("went on")
        return 0

    monkeypatch.setattr(_cli, "_cmd_presets", command)
    assert main(["presets"]) == 0
    assert events == ["went on"]


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch, capsys):
    def command(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "_cmd_presets", command)
    assert main(["presets"]) == 130
    assert capsys.readouterr().err == "rmsnorm presets: interrupted (Ctrl-C)\n"
