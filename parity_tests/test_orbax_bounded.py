"""Reading an Orbax checkpoint is bounded: only the norm arrays are restored, and a
FIFO or a link to /dev/zero in the folder is refused before Orbax opens it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ocp = pytest.importorskip("orbax.checkpoint")

from rmsnorm_core import load  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402

EMBED = (8192, 4096)  # 128 MiB of float32 (zeros: a few KB on disk)


def _checkpoint(path):
    tree = {
        "params": {
            "embed": {"embedding": np.zeros(EMBED, np.float32)},
            "final_norm": {"scale": np.linspace(0.5, 1.5, 64).astype(np.float32)},
        }
    }
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path, tree)
    checkpointer.wait_until_finished()
    return path


READ = """
import json, resource, sys
from pathlib import Path
from rmsnorm_core import RMSNormSpec
from rmsnorm_flax.interop._orbax import read_layers
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
layers = read_layers(Path(sys.argv[1]), RMSNormSpec.preset("flax"), None, ("param_dtype",))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"layers": sorted(layers), "grown_kib": grown}))
"""


def test_only_the_norm_arrays_are_restored(tmp_path):
    path = _checkpoint(tmp_path / "ck")
    out = subprocess.run(
        [sys.executable, "-c", READ, str(path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["layers"] == ["params.final_norm"] or result["layers"] == ["final_norm"]
    assert result["grown_kib"] < 64 * 1024, result  # the 128 MiB embedding was never read


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_fifo_or_dev_zero_metadata_file_is_refused(tmp_path, kind):
    path = _checkpoint(tmp_path / "ck")
    (path / "_METADATA").unlink()
    if kind == "fifo":
        os.mkfifo(path / "_METADATA")
    else:
        (path / "_METADATA").symlink_to("/dev/zero")
    argv = ["convert", str(path), str(tmp_path / "n.safetensors"), "--preset", "flax"]
    # in a child with a timeout: before the check, Orbax blocked on the FIFO forever
    run = [sys.executable, "-m", "rmsnorm_core", *argv]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "_METADATA' is not a regular file" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "n.safetensors").exists()


def test_convert_still_reads_the_norms(tmp_path):
    path = _checkpoint(tmp_path / "ck")
    assert main(["convert", str(path), str(tmp_path / "n.safetensors"), "--preset", "flax"]) == 0
    layers = load(tmp_path / "n.safetensors")
    assert len(layers) == 1
    (layer,) = layers.values()
    np.testing.assert_array_equal(layer.scale, np.linspace(0.5, 1.5, 64).astype(np.float32))
