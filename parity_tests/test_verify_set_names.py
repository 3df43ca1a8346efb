"""What ``verify`` calls a spec changed by ``--set``, and what it says when what was asked
for is not installed (found by a hostile probe of issue 32's CLI work): the name says the
changed fields in the spec's field order whatever the order of the options, a ``--set``
that changes nothing leaves the name (so two runs of one spec pair in ``--baseline``),
and ``--backend torch-eager`` without torch names the install command instead of calling
the runner unknown."""

from __future__ import annotations

import argparse
import subprocess
import sys

from rmsnorm_core.cli._cli_verify import _specs


def _names(presets: list[str], changes: list[str]) -> list[str]:
    args = argparse.Namespace(spec=None, preset=presets, set=changes)
    return list(_specs(args))


def test_the_name_lists_what_changed_in_field_order():
    one = _names(["llama", "gemma"], ["partial=0.5", "eps=1e-5"])
    other = _names(["llama", "gemma"], ["eps=1e-5", "partial=0.5"])
    assert one == other == ["llama+eps=1e-05,partial=0.5", "gemma+eps=1e-05,partial=0.5"]


def test_a_set_that_changes_nothing_leaves_the_name():
    assert _names(["llama"], ["eps=1e-6"]) == ["llama"]
    assert _names(["llama"], ["axes=[-1]", "eps=1e-5"]) == ["llama+eps=1e-05"]


HIDDEN = (
    "import sys\n"
    "sys.modules['torch'] = None\n"
    "from rmsnorm_core.cli._cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _without_torch(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", HIDDEN, *argv], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_a_runner_of_a_backend_not_installed_names_the_install_command():
    for backend in ("torch-eager", "torch"):
        run = _without_torch("verify", "--quick", "--preset", "llama", "--backend", backend)
        assert run.returncode == 2, run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert "nothing was checked: torch: not installed (torch); install: pip install" in last
        assert "is not a runner or backend" not in run.stderr
