"""Damaged Orbax checkpoints give one clear error, never other numbers (issue 22 item 15).

Orbax keeps no checksum of array data, so a checkpoint ``rmsnorm convert``
writes carries each array's SHA-256 in Orbax's custom metadata and reading
checks it. A damaged tree store gives one line, with none of the "Event loop
is closed" tracebacks, "Task exception was never retrieved" records or absl
warnings that Orbax's in-flight reads used to print around it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("orbax.checkpoint")
pytest.importorskip("jax")

from rmsnorm_core import NeutralLayer, RMSNormSpec, load, save  # noqa: E402
from rmsnorm_core.cli._cli import main  # noqa: E402


def _checkpoint(tmp_path: Path) -> tuple[Path, dict[str, NeutralLayer]]:
    rng = np.random.default_rng(7)
    layers = {
        f"layers_{i}.norm": NeutralLayer(
            RMSNormSpec.preset("flax"), rng.standard_normal(2048).astype(np.float32)
        )
        for i in range(3)
    }
    save(tmp_path / "a.safetensors", layers)
    ck = tmp_path / "ck"
    assert main(["convert", str(tmp_path / "a.safetensors"), str(ck), "--to", "orbax"]) == 0
    return ck, layers


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 40):
        data[i] ^= 0x5A
    path.write_bytes(data)


def test_a_wrong_digest_is_refused_naming_the_array(tmp_path, capsys):
    ck, _ = _checkpoint(tmp_path)
    meta_file = ck / "_CHECKPOINT_METADATA"
    meta = json.loads(meta_file.read_text())
    digests = meta["custom_metadata"]["rmsnorm_bridge"]["sha256"]
    assert set(digests) == {f"params/layers_{i}/norm/scale" for i in range(3)}
    digests["params/layers_1/norm/scale"] = "0" * 64
    meta_file.write_text(json.dumps(meta))
    assert main(["convert", str(ck), str(tmp_path / "b.safetensors"), "--preset", "flax"]) == 2
    err = capsys.readouterr().err
    assert "'params/layers_1/norm/scale' does not match the SHA-256" in err
    assert not (tmp_path / "b.safetensors").exists()


def test_damaged_array_data_is_never_read_as_other_numbers(tmp_path, capsys):
    ck, layers = _checkpoint(tmp_path)
    data = sorted((ck / "ocdbt.process_0" / "d").iterdir(), key=lambda f: f.stat().st_size)
    _flip(data[-1])  # the largest data file: the arrays
    rc = main(["convert", str(ck), str(tmp_path / "b.safetensors"), "--preset", "flax"])
    err = capsys.readouterr().err
    if rc == 0:  # the damage missed every array: then what came back is what went in
        back = load(tmp_path / "b.safetensors")
        assert all(back[n].equals(layers[n]) for n in layers)
    else:
        assert rc == 2 and ("damaged" in err or "cannot be restored" in err), err


RMSNORM = "import sys; from rmsnorm_core.cli._cli import main; sys.exit(main(sys.argv[1:]))"


def test_a_damaged_tree_store_gives_one_line_and_no_tracebacks(tmp_path):
    ck, _ = _checkpoint(tmp_path)
    _flip(next((ck / "d").iterdir()))  # the tree's metadata store
    for _ in range(3):  # the tracebacks came in most runs, not all
        run = subprocess.run(
            [sys.executable, "-c", RMSNORM, "convert", str(ck), str(tmp_path / "b.safetensors"),
             "--preset", "flax"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 2
        assert "Traceback" not in run.stderr, run.stderr
        lines = run.stderr.splitlines()
        assert len(lines) == 1 and "cannot read the checkpoint's tree metadata" in lines[0], lines


def _orphaned_failure(message: str, kind: str = "task") -> None:
    """A task (or a bare future) failing with ``message`` that nobody awaits, then
    collected: what a read Orbax left running does when it fails before Orbax's loop
    closes (the loaded-machine case; too rare to provoke on demand). asyncio logs the
    first as "Task exception was never retrieved", the second (seen once in CI) as
    "Future exception was never retrieved"."""

    async def read() -> None:
        raise ValueError(message)

    loop = asyncio.new_event_loop()
    if kind == "task":
        pending = loop.create_task(read())
        loop.run_until_complete(asyncio.sleep(0.01))
    else:
        pending = loop.create_future()
        pending.set_exception(ValueError(message))
    loop.close()
    del pending
    gc.collect()


@pytest.mark.parametrize("kind", ["task", "future"])
def test_a_late_failure_of_a_read_is_dropped_and_nothing_else(tmp_path, caplog, kind):
    ck, _ = _checkpoint(tmp_path)
    _flip(next((ck / "d").iterdir()))
    caplog.set_level(logging.ERROR, logger="asyncio")
    assert main(["convert", str(ck), str(tmp_path / "b.safetensors"), "--preset", "flax"]) == 2
    gc.collect()  # a read convert left running may be collected (and logged) here
    _orphaned_failure(f'DATA_LOSS: Error reading local file "{ck.resolve()}/d/0a1b"', kind)
    assert not caplog.records  # the read's failure is the error convert printed
    other = tmp_path / "other"
    _orphaned_failure(f'DATA_LOSS: Error reading local file "{other}/d/0a1b"', kind)
    _orphaned_failure("some other task of the program", kind)
    retrieved = [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert [str(r.exc_info[1]) for r in retrieved] == [
        f'DATA_LOSS: Error reading local file "{other}/d/0a1b"',
        "some other task of the program",
    ]
