"""A failed Orbax write (the disk full, a file too large) is one line naming the target.

Orbax logs the failure from each of its save threads, with a traceback, before it
raises; TensorStore's message names the staging folder. ``rmsnorm convert`` prints one
line, naming the path the user gave, and leaves nothing behind. The file-size limit
(RLIMIT_FSIZE) stands in for a full disk: both fail TensorStore's data write with an
OS error.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")
resource = pytest.importorskip("resource")
signal = pytest.importorskip("signal")

from rmsnorm_core import RMSNormError, RMSNormSpec, neutral_layer, save  # noqa: E402
from rmsnorm_core.io._atomic_folder import replacing_folder  # noqa: E402

LIMIT = 100_000  # bytes per file: the array below compresses to several times this


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_a_failed_write_is_one_line_naming_the_target(tmp_path):
    values = np.random.default_rng(0).standard_normal(200_000).astype(np.float32)
    src = tmp_path / "big.safetensors"
    save(src, {"norm": neutral_layer("norm", RMSNormSpec.preset("llama"), values, None)})
    target = tmp_path / "ck"
    # the child limits itself (a preexec_fn would fork this process, where JAX may run)
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG, no signal\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, "
        "resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "from rmsnorm_core.cli._cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = [sys.executable, "-c", code, "convert", str(src), str(target), "--to", "orbax"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    expected = f"cannot write {str(target)!r}: {os.strerror(errno.EFBIG)}"
    assert done.stderr == f"rmsnorm convert: error: {expected}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.safetensors"]


def test_a_path_inside_a_writers_temporary_sibling_is_named_inside_the_target(tmp_path):
    target = tmp_path / "ck"
    with pytest.raises(RMSNormError) as info:
        with replacing_folder(target) as new:
            raise RMSNormError(f'failed writing "{new}.orbax-checkpoint-tmp/d/0": no space')
    assert str(info.value) == f'failed writing "{target}/d/0": no space'
