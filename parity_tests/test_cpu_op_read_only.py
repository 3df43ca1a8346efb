"""A build folder this process cannot write (a prebuilt image run on a read-only file
system, or as another user) is loaded from where it holds a finished build, and falls
back with the reason where it does not. Root writes anywhere, so the child processes
here make the lock's open fail as a read-only file system does (``EROFS``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("torch")

from rmsnorm_torch.kernels import _cpu_op  # noqa: E402

pytestmark = pytest.mark.skipif(_cpu_op.status() != "native", reason="no native build here")

_CHILD = r"""
import errno, warnings
from rmsnorm_torch.kernels import _cpu_op

def read_only(directory, deadline):
    raise OSError(errno.EROFS, "Read-only file system", directory)

_cpu_op.folder_held = read_only
warnings.simplefilter("ignore")
print(_cpu_op.status())
"""


def _prebuilt(root) -> str:
    """A copy of this process's finished build under a new extensions root: the library
    and the builder's lock file, as an image's build leaves them."""
    name, _ = _cpu_op.library_name()
    built = _cpu_op._build_directory(name)
    folder = root / "rmsnorm_bridge" / name
    folder.mkdir(parents=True)
    shutil.copy2(os.path.join(built, name + ".so"), folder / (name + ".so"))
    (folder / "builder.lock").touch()
    return str(folder)


def _status(root) -> str:
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_finished_build_in_a_read_only_folder_is_loaded(tmp_path):
    _prebuilt(tmp_path)
    assert _status(tmp_path) == "native"


def test_a_read_only_folder_without_a_finished_build_falls_back(tmp_path):
    folder = _prebuilt(tmp_path)
    open(os.path.join(folder, "lock"), "w").close()  # a build died here: not finished
    assert _status(tmp_path).startswith("python (the build folder cannot be locked")
    os.remove(os.path.join(folder, "lock"))
    name, _ = _cpu_op.library_name()
    os.remove(os.path.join(folder, name + ".so"))  # nothing built
    assert _status(tmp_path).startswith("python (the build folder cannot be locked")
