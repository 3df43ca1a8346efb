"""``write_atomic`` replaces only regular files: a FIFO or a character device gets the
bytes written into it in place; a socket (or a block device) is refused, left as it is."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from rmsnorm_core import RMSNormError, write_atomic

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX special files")


def _bytes_writer(payload):
    return payload


def _path_writer(payload):
    def write(tmp):
        tmp.write_bytes(payload)

    return write


WRITERS = [_bytes_writer, _path_writer]


@pytest.mark.parametrize("writer", WRITERS, ids=["bytes", "path-writer"])
def test_a_fifo_gets_the_bytes_and_stays_a_fifo(tmp_path, writer):
    fifo = tmp_path / "report.pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer can open
    try:
        write_atomic(fifo, writer(b'{"report": 1}'))
        got = os.read(reader, 1 << 16)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert got == b'{"report": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.pipe"]


@pytest.mark.parametrize("writer", WRITERS, ids=["bytes", "path-writer"])
def test_a_character_device_is_written_in_place(writer):
    """A pseudo-terminal: a character device whose bytes come back on the other side
    (its folder, /dev/pts, takes no new files, so nothing could replace it)."""
    leader, follower = os.openpty()
    try:
        name = os.ttyname(follower)
        assert stat.S_ISCHR(os.stat(name).st_mode)
        import termios
        import tty

        tty.setraw(follower, termios.TCSANOW)  # bytes as they are, no newline translation
        write_atomic(name, writer(b"written in place"))
        got = os.read(leader, 1 << 16)
    finally:
        os.close(leader)
        os.close(follower)
    assert got == b"written in place"


def test_dev_stdout_through_a_pipe_is_written_into(tmp_path):
    """``--report /dev/stdout`` in a pipeline: the bytes go down the pipe."""
    code = (
        "import sys; from rmsnorm_core import write_atomic; write_atomic('/dev/stdout', b'ok\\n')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b"ok\n"


def test_a_socket_is_refused_and_kept(tmp_path):
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(
            RMSNormError, match=r"cannot write '.*s\.sock': it is a socket; a writer replaces only"
        ):
            write_atomic(path, b"data")
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        server.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sock"]


def test_a_symlink_to_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(tmp_path / "link", b"through")
        got = os.read(reader, 100)
    finally:
        os.close(reader)
    assert got == b"through"
    assert (tmp_path / "link").is_symlink() and stat.S_ISFIFO(os.stat(fifo).st_mode)
