"""``rmsnorm docs``: the documentation, offline.

The guides and the reference are the ``docs/`` folder of the source tree (the
folder ``pip install`` was run from). With the ``docs`` extra (``pip install -e
'.[docs]'``), ``rmsnorm docs`` builds the site from them and serves it on
http://127.0.0.1:8000 from this process until Ctrl-C, SIGTERM or SIGHUP (each
removes the built site); ``--build DIR`` only builds it into DIR
(open ``DIR/index.html``): a new or empty folder, or one it built before (it
leaves a ``.rmsnorm-docs-site`` file there), since a build empties the folder.
SIGTERM or SIGHUP during the build also stops the mkdocs process (with everything
it started) and removes the folder; Ctrl-C during the build says so in one line and
exits 130. The site needs no network: math is rendered to MathML when it is built
and nothing is loaded from elsewhere. Without the extra, the command says where the
Markdown is (it reads well as it is).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rmsnorm_core.cli._cli_args import command_parser
from rmsnorm_core.cli._cli_paths import CommandPaths
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError

SOURCE = Path(__file__).resolve().parents[2]
"""The source tree this package was installed from (``mkdocs.yml`` and ``docs/``)."""


MARKER = ".rmsnorm-docs-site"
"""The file ``--build`` writes into the folder it builds: only such a folder is emptied."""
MARKER_TEXT = "built by `rmsnorm docs --build`; this folder is emptied by the next build\n"


def add_parser(sub: Any) -> None:
    p = command_parser(
        sub,
        "docs",
        "build the documentation site and serve it locally (offline)",
        __doc__,
        paths=paths,
    )
    p.add_argument("--build", metavar="DIR", help="only build the site into DIR")
    p.add_argument("--port", type=_port, default=8000, help="port to serve on (default 8000)")
    p.set_defaults(func=run)


def paths(args: argparse.Namespace) -> CommandPaths:
    """The sources ``docs`` reads and the folder ``--build`` writes whole."""
    return CommandPaths(
        inputs={"the docs source": SOURCE / "docs", "mkdocs.yml": SOURCE / "mkdocs.yml"},
        outputs={"--build": args.build},
    )


def _port(text: str) -> int:
    """A TCP port to serve on: 1 to 65535."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not accepted; expected a port, 1 to 65535")
    return value


def _server(port: int) -> http.server.ThreadingHTTPServer:
    """The server, bound now: a port in use is refused before the site is built."""
    try:
        return http.server.ThreadingHTTPServer(
            ("127.0.0.1", port), http.server.SimpleHTTPRequestHandler
        )
    except OSError as err:
        raise RMSNormUsageError(
            f"--port {port}: cannot serve on 127.0.0.1:{port} ({err.strerror}); choose another port"
        ) from None


def _serve(server: http.server.ThreadingHTTPServer, site: Path) -> None:
    """Serve ``site`` in this process until Ctrl-C (or a stop signal, raised through):
    no server process that could outlive the command."""
    server.RequestHandlerClass = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(site)
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how serving ends
        server.serve_forever()


def run(args: argparse.Namespace) -> int:
    docs = SOURCE / "docs"
    if not (SOURCE / "mkdocs.yml").is_file() or not docs.is_dir():
        raise RMSNormError(
            "the documentation is not installed with this copy of rmsnorm-bridge: it is the "
            "docs/ folder of the source tree (its guides read well as Markdown)"
        )
    if importlib.util.find_spec("mkdocs") is None:
        print(
            f"The documentation is Markdown in {docs} (start at {docs / 'index.md'}).\n"
            "For the rendered site: pip install -e '.[docs]' in that source tree, then "
            "rmsnorm docs."
        )
        return 0
    # a stop signal (``_cli_signals``) or Ctrl-C unwinds the build and the serving loop:
    # each ``finally`` below runs (the mkdocs group stopped, the served site removed)
    if args.build:
        return _build(docs, Path(args.build), args.build)
    _build_and_serve(docs, args.port)
    return 0


def _build_and_serve(docs: Path, port: int) -> None:
    """Build the site into a temporary folder and serve it; the folder is removed
    however serving ends (Ctrl-C, a stop signal, an error)."""
    server = _server(port)
    try:
        site = Path(tempfile.mkdtemp(prefix="rmsnorm-docs-"))
        try:
            _build(docs, site, None)
            print(f"serving {site} on http://127.0.0.1:{port} (Ctrl-C stops)", flush=True)
            _serve(server, site)
        finally:
            shutil.rmtree(site, ignore_errors=True)
    finally:
        server.server_close()


def _mkdocs(site: Path) -> subprocess.CompletedProcess[str]:
    """Run ``mkdocs build`` into ``site`` in its own process group, which is stopped
    (SIGTERM, then SIGKILL) when this call is interrupted: nothing it started goes on
    writing into a folder that is being removed."""
    child = subprocess.Popen(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(site.resolve())],
        cwd=SOURCE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, err = child.communicate()
    except BaseException:
        _stop_group(child)
        raise
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _stop_group(child: subprocess.Popen[str]) -> None:
    """Stop ``child``'s process group and reap ``child``."""
    for signum, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)
        try:
            child.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()


def _build(docs: Path, site: Path, given: str | None) -> int:
    """Build the site into ``site``: a folder that is absent, empty, or one this command
    built (it holds :data:`MARKER`); mkdocs empties the folder first, so any other
    folder is refused with nothing deleted."""
    if site.exists() and not site.is_dir():
        raise RMSNormUsageError(f"--build {given!r} exists and is not a folder")
    if site.exists() and any(site.iterdir()) and not (site / MARKER).is_file():
        raise RMSNormUsageError(
            f"--build {given!r} holds files and is not a built site of rmsnorm docs "
            f"(it has no {MARKER}); choose a new or empty folder"
        )
    try:  # marked before the build, so a build that fails halfway can be built again
        site.mkdir(parents=True, exist_ok=True)
        (site / MARKER).write_text(MARKER_TEXT)
    except OSError as err:
        raise RMSNormUsageError(f"--build {given!r}: cannot write it: {err.strerror}") from None
    print(f"building the site from {docs} into {site} ...", file=sys.stderr, flush=True)
    built = _mkdocs(site)
    if built.returncode != 0:
        raise RMSNormError(f"the site did not build:\n{built.stderr[-2000:]}")
    (site / MARKER).write_text(MARKER_TEXT)  # mkdocs keeps dot files; written again regardless
    if given is not None:
        print(f"built: open {site / 'index.html'}")
    return 0
