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
