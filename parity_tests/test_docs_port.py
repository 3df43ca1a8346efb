"""``rmsnorm docs --port``: a port that can be served on, checked before the build."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("value", ["0", "99999", "http"])
def test_a_port_outside_1_to_65535_is_refused(value, capsys):
    from rmsnorm_core.cli._cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["docs", "--port", value])
    assert exit_info.value.code == 2
    assert f"--port: {value!r} is not accepted; expected a port, 1 to 65535" in (
        capsys.readouterr().err
    )


def test_a_port_in_use_is_refused_before_the_site_is_built(capsys):
    import socket

    pytest.importorskip("mkdocs")  # without it the command only says where the Markdown is

    from rmsnorm_core.cli._cli import main

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["docs", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"cannot serve on 127.0.0.1:{port}" in err and "building" not in err


def test_sigterm_while_serving_stops_the_server_and_removes_the_site(tmp_path):
    import re
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    pytest.importorskip("mkdocs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "out"
    with log.open("w") as out:
        docs = subprocess.Popen(
            [sys.executable, "-m", "rmsnorm_core", "docs", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (found := re.search(r"serving (\S+) on", log.read_text())):
            assert docs.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=30).read()
        assert b"<html" in page.lower()
        docs.send_signal(signal.SIGTERM)
        docs.wait(timeout=30)
    finally:
        docs.kill()
    assert docs.returncode == -signal.SIGTERM
    assert not Path(found.group(1)).exists()  # the site built to serve is gone
    with socket.socket() as s:  # and nothing listens on the port any more (TIME_WAIT may)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
