"""A path that names an open descriptor (``/dev/stdout``, ``/dev/fd/N``, ``/proc/*/fd/N``)
is written where the descriptor points (a shell's ``>> build.log`` appends), never renamed
over: the file the descriptor is open on keeps its inode and its earlier bytes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from rmsnorm_core import RMSNormError, RMSNormSpec, neutral_layer, save, write_atomic


def _names(fd):
    return [f"/dev/fd/{fd}", f"/proc/self/fd/{fd}", f"/proc/{os.getpid()}/fd/{fd}"]


@pytest.mark.parametrize("form", ["bytes", "path-writer"])
@pytest.mark.parametrize("which", [0, 1, 2], ids=["dev-fd", "proc-self", "proc-pid"])
def test_an_appending_descriptor_gets_the_bytes_appended(tmp_path, which, form):
    log = tmp_path / "build.log"
    log.write_bytes(b"earlier\n")
    inode = log.stat().st_ino
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        data = b"artifact" if form == "bytes" else (lambda tmp: tmp.write_bytes(b"artifact"))
        write_atomic(_names(fd)[which], data)
    finally:
        os.close(fd)
    assert log.read_bytes() == b"earlier\nartifact"
    assert log.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build.log"]


def test_a_descriptor_is_written_at_its_own_offset_and_left_open(tmp_path):
    log = tmp_path / "out.bin"
    log.write_bytes(b"0123456789")
    fd = os.open(log, os.O_WRONLY)
    try:
        os.lseek(fd, 2, os.SEEK_SET)
        write_atomic(f"/dev/fd/{fd}", b"ab")
        write_atomic(f"/dev/fd/{fd}", b"cd")  # still open, at the offset the first left
    finally:
        os.close(fd)
    assert log.read_bytes() == b"01abcd6789"


def test_a_closed_descriptor_is_a_one_line_error(tmp_path):
    fd = os.open(tmp_path / "x", os.O_WRONLY | os.O_CREAT)
    os.close(fd)
    with pytest.raises(RMSNormError, match=rf"cannot write '/dev/fd/{fd}': Bad file descriptor"):
        write_atomic(f"/dev/fd/{fd}", b"data")


def test_convert_to_dev_stdout_appends_to_the_file_the_shell_opened(tmp_path):
    spec = RMSNormSpec.preset("llama")
    save(tmp_path / "one.safetensors", {"n": neutral_layer("n", spec, np.ones(4, np.float32), None)})
    convert = [sys.executable, "-m", "rmsnorm_core", "convert", str(tmp_path / "one.safetensors")]
    ref = tmp_path / "ref.safetensors"
    subprocess.run([*convert, str(ref), "--to", "neutral"], check=True, capture_output=True)
    log = tmp_path / "build.log"
    log.write_bytes(b"earlier\n")
    inode = log.stat().st_ino
    with open(log, "ab") as out:  # the shell's >> build.log
        r = subprocess.run(
            [*convert, "/dev/stdout", "--to", "neutral"], stdout=out, stderr=subprocess.PIPE,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    assert log.read_bytes() == b"earlier\n" + ref.read_bytes()  # the artifact alone, appended
    assert log.stat().st_ino == inode
    assert b"wrote 1 layer(s) to /dev/stdout" in r.stderr  # its line went to stderr


def test_bench_takes_a_report_path_that_names_a_descriptor_open_on_a_log(tmp_path):
    """``bench --json /dev/fd/N`` where N is open on a log (``>> build.log``): the log is
    no earlier report, yet it is appended to, never replaced, so it is not refused."""
    from rmsnorm_core.cli._cli_bench import check_report_path

    log = tmp_path / "build.log"
    log.write_bytes(b"earlier\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        check_report_path(f"/dev/fd/{fd}", "--json")  # raises if refused
    finally:
        os.close(fd)
    assert log.read_bytes() == b"earlier\n"
