"""``write_atomic``: whole files only, modes kept, symlinks written through, no litter."""

from __future__ import annotations

import os
import stat

import pytest

from rmsnorm_core import RMSNormError, write_atomic


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_existing_file_keeps_its_mode(tmp_path):
    target = tmp_path / "c.safetensors"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and _mode(target) == 0o644
    os.chmod(target, 0o600)
    write_atomic(target, b"newer")
    assert _mode(target) == 0o600


def test_a_new_file_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "a", b"x")
        os.umask(0o002)
        write_atomic(tmp_path / "b", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a") == 0o640 and _mode(tmp_path / "b") == 0o664


def test_a_symlink_is_written_through(tmp_path):
    real = tmp_path / "store" / "c.safetensors"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "current.safetensors"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"


def test_failures_leave_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "c.bin"
    target.write_bytes(b"old")

    def half_written(tmp):
        tmp.write_bytes(b"par")
        raise OSError(28, "No space left on device")

    with pytest.raises(RMSNormError, match=r"cannot write '.*c\.bin': No space left on device"):
        write_atomic(target, half_written)

    def interrupted(tmp):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, interrupted)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.bin"]


def test_errors_name_the_target_not_the_temporary(tmp_path):
    with pytest.raises(
        RMSNormError, match=r"cannot write '.*nofolder/x': folder '.*nofolder' does not exist"
    ):
        write_atomic(tmp_path / "nofolder" / "x", b"")
    (tmp_path / "dir").mkdir()
    with pytest.raises(RMSNormError, match=r"cannot write '.*dir': it is a folder"):
        write_atomic(tmp_path / "dir", b"")
