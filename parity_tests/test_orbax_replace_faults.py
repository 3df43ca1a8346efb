"""``save_orbax`` over an earlier checkpoint, with a failure injected at every rename.

A save makes three renames (Orbax's own temporary folder to the staged one, the old
checkpoint aside, the new one into place). Whichever fails (no space, no permission,
or Ctrl-C there), the old checkpoint is still at its path byte for byte, the error
is one RMSNormError line (Ctrl-C goes up as itself), and no staging folder is left.
"""

from __future__ import annotations

import errno
import os
import signal

import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")

from rmsnorm_core import RMSNormError, RMSNormSpec, neutral_layer  # noqa: E402
from rmsnorm_core.cli._cli_signals import Stopped  # noqa: E402
from rmsnorm_flax.interop._orbax import _restore_norms, save_orbax  # noqa: E402

RENAMES = 3


def _layers(value):
    spec = RMSNormSpec.preset("llama")
    return {"norm": neutral_layer("norm", spec, np.full(8, value, np.float32), None)}


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _failing_rename(monkeypatch, fail_at, fault):
    """os.rename that raises ``fault`` on the calls numbered in ``fail_at`` (from 1)."""
    real, count = os.rename, [0]

    def rename(src, dst, *args, **kwargs):
        count[0] += 1
        if count[0] in fail_at:
            raise fault
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", rename)
    return count


FAULTS = {
    "ENOSPC": OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    "EACCES": PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
    "interrupt": KeyboardInterrupt(),
}


def test_a_save_makes_the_renames_counted_here(tmp_path, monkeypatch):
    """The cases below cover every rename: a save that makes more would need more."""
    save_orbax(tmp_path / "ck", _layers(1.0))
    count = _failing_rename(monkeypatch, (), None)
    save_orbax(tmp_path / "ck", _layers(2.0))
    assert count[0] == RENAMES


@pytest.mark.parametrize("step", range(1, RENAMES + 1), ids=lambda s: f"rename{s}")
@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_the_old_checkpoint_survives_a_failure_at_every_step(tmp_path, monkeypatch, step, fault):
    target = tmp_path / "ck"
    save_orbax(target, _layers(1.0))
    before = _snapshot(target)
    _failing_rename(monkeypatch, {step}, FAULTS[fault])
    if fault == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            save_orbax(target, _layers(2.0))
    else:
        with pytest.raises(RMSNormError, match=r"^cannot write '.*ck': ") as info:
            save_orbax(target, _layers(2.0))
        assert "\n" not in str(info.value) and not isinstance(info.value, OSError)
        assert os.strerror(FAULTS[fault].errno) in str(info.value)
    monkeypatch.undo()
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    save_orbax(target, _layers(3.0))  # and it can still be replaced afterwards
    assert _snapshot(target) != before


def test_when_the_old_checkpoint_cannot_be_moved_back_the_error_says_where_it_is(
    tmp_path, monkeypatch
):
    target = tmp_path / "ck"
    save_orbax(target, _layers(1.0))
    before = _snapshot(target)
    _failing_rename(monkeypatch, {RENAMES, RENAMES + 1}, FAULTS["ENOSPC"])
    with pytest.raises(RMSNormError, match="could not be moved back and is at") as info:
        save_orbax(target, _layers(2.0))
    monkeypatch.undo()
    kept = str(info.value).rsplit(" is at ", 1)[1].strip("'")
    assert _snapshot(type(target)(kept)) == before


def _rename_then_raise(monkeypatch, at, fault):
    """os.rename that makes its call numbered ``at`` (from 1) and then raises ``fault``:
    a signal landing just after the rename, before the code that follows it."""
    real, count = os.rename, [0]

    def rename(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        count[0] += 1
        if count[0] == at:
            raise fault

    monkeypatch.setattr(os, "rename", rename)


SIGNALS = {"interrupt": KeyboardInterrupt(), "stopped": Stopped(signal.SIGTERM)}


@pytest.mark.parametrize("step", range(1, RENAMES), ids=lambda s: f"rename{s}")
@pytest.mark.parametrize("fault", SIGNALS, ids=str)
def test_a_signal_just_after_a_rename_before_the_swap_keeps_the_old_checkpoint(
    tmp_path, monkeypatch, step, fault
):
    target = tmp_path / "ck"
    save_orbax(target, _layers(1.0))
    before = _snapshot(target)
    _rename_then_raise(monkeypatch, step, SIGNALS[fault])
    with pytest.raises(type(SIGNALS[fault])):
        save_orbax(target, _layers(2.0))
    monkeypatch.undo()
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


@pytest.mark.parametrize("fault", SIGNALS, ids=str)
def test_a_signal_just_after_the_swap_leaves_the_new_checkpoint_and_no_staging(
    tmp_path, monkeypatch, fault
):
    target = tmp_path / "ck"
    save_orbax(target, _layers(1.0))
    _rename_then_raise(monkeypatch, RENAMES, SIGNALS[fault])
    with pytest.raises(type(SIGNALS[fault])):
        save_orbax(target, _layers(2.0))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    restored = _restore_norms(target)  # checks each array against its written digest
    np.testing.assert_array_equal(restored["params"]["norm"]["scale"], np.full(8, 2.0))
