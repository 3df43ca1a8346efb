"""A full disk under a CLI output: exit 2 with one line, the old file kept, no temporary
file left (never a C++ abort from a writer that bypasses ``write_atomic``'s handle)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from rmsnorm_core import RMSNormSpec, neutral_layer, save
from rmsnorm_core.cli._cli import main


class _FullDisk:
    """A file opened for writing whose every write fails with ENOSPC."""

    def __init__(self, file):
        self._file = file

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def _fill_the_disk(monkeypatch):
    """Every file ``os.fdopen`` opens for writing fails to write (``write_atomic``'s temp file)."""
    real = os.fdopen

    def fdopen(fd, mode="r", *args, **kwargs):
        file = real(fd, mode, *args, **kwargs)
        return _FullDisk(file) if any(c in mode for c in "wa+") else file

    monkeypatch.setattr(os, "fdopen", fdopen)


def test_torchscript_export_on_a_full_disk_exits_2_and_keeps_the_old_file(
    tmp_path, monkeypatch, capsys
):
    pytest.importorskip("torch")
    spec = RMSNormSpec.preset("llama")
    save(tmp_path / "one.safetensors", {"n": neutral_layer("n", spec, np.ones(4, np.float32), None)})
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "m.pt").write_bytes(b"old archive")
    _fill_the_disk(monkeypatch)
    code = main(["export", str(tmp_path / "one.safetensors"), "--torchscript", str(out / "m.pt")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "m.pt" in err and os.strerror(errno.ENOSPC) in err
    assert (out / "m.pt").read_bytes() == b"old archive"
    assert sorted(p.name for p in out.iterdir()) == ["m.pt"]
