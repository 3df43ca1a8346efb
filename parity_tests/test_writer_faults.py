"""Fault injection for every writer: the target is the old version or the new one, never
neither, never a part, and no temporary file or staging folder is left.

Each writer's calls of the file system operations below are counted once (replacing
an earlier output); then, over an earlier output, one operation fails at its first,
a middle or its last call: no space (ENOSPC), no permission (EACCES), or Ctrl-C there
(a signal between two steps). Versions differ in their weights and their specs, so a
folder mixing the files of two versions is neither.
"""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from rmsnorm_core import RMSNormError, RMSNormSpec, neutral_layer, save, write_atomic

OPERATIONS = ("write", "fsync", "chmod", "replace", "rename")


def _layers(value):
    spec = RMSNormSpec.preset("llama", eps=value * 1e-5)  # each version: other specs too
    return {"model.norm": neutral_layer("model.norm", spec, np.full(8, value, np.float32), None)}


def _bytes(path, value):
    write_atomic(path, f"version {value}".encode())


def _through_a_path(path, value):
    write_atomic(path, lambda tmp: tmp.write_bytes(f"version {value}".encode()))


def _neutral(path, value):
    save(path, _layers(value))


def _hf_folder(path, value):
    from rmsnorm_core.io._hf_checkpoint import write_layers

    write_layers(path, _layers(value))


def _bench_json(path, value):
    from rmsnorm_core.bench._bench import write_json

    write_json([], path, sweeps=[{"version": value}])


def _bench_gpu_json(path, value):
    from rmsnorm_core.bench._bench_gpu import write

    write([{"version": value}], path, smoke=True)


def _bench_plot(path, value):
    pytest.importorskip("matplotlib")
    from rmsnorm_core.bench._bench_plots import _pyplot, _save

    fig, ax = _pyplot().subplots(figsize=(1, 1))
    ax.plot([0, value])
    _save(fig, path)


def _msgpack(path, value):
    pytest.importorskip("flax")
    from rmsnorm_flax.interop._msgpack import save_msgpack

    save_msgpack(path, _layers(value))


def _orbax(path, value):
    pytest.importorskip("orbax.checkpoint")
    from rmsnorm_flax.interop._orbax import save_orbax

    save_orbax(path, _layers(value))


def _torch_state_dict(path, value):
    pytest.importorskip("torch")
    from rmsnorm_torch.interop._statedict_files import save_state_dict

    save_state_dict(path, _layers(value))


WRITERS = {
    "write_atomic-bytes": (_bytes, "out.bin"),
    "write_atomic-path-writer": (_through_a_path, "out.bin"),
    "neutral-checkpoint": (_neutral, "n.safetensors"),
    "hf-folder": (_hf_folder, "hf"),
    "bench-json": (_bench_json, "bench.json"),
    "bench-gpu-json": (_bench_gpu_json, "gpu.json"),
    "bench-plot": (_bench_plot, "ratios.png"),
    "flax-msgpack": (_msgpack, "p.msgpack"),
    "orbax": (_orbax, "ck"),
    "torch-state-dict": (_torch_state_dict, "sd.pt"),
}

FAULTS = {
    "ENOSPC": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    "EACCES": lambda: PermissionError(errno.EACCES, os.strerror(errno.EACCES)),
    "interrupt": KeyboardInterrupt,
}


def _snapshot(path):
    if path.is_dir():
        return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes()


class _FailingFile:
    """A file opened for writing whose first ``write`` stores half the data, then fails."""

    def __init__(self, file, fault):
        self._file, self._fault = file, fault

    def write(self, data):
        self._file.write(data[: len(data) // 2])
        self._file.close()  # the half is on disk; no handle outlives the fault
        raise self._fault()

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def _writing(args, kwargs, at):
    mode = kwargs.get("mode", args[at] if len(args) > at else "r")
    return isinstance(mode, str) and any(c in mode for c in "wax+")


def _patch_opens(monkeypatch, counts, fail):
    """Count the files opened for writing (``open``, ``os.fdopen``); the failing one writes
    half its data (a disk that fills up, a signal mid-write)."""
    import builtins
    import io

    for owner, name, at in [(io, "open", 1), (builtins, "open", 1), (os, "fdopen", 1)]:
        real = getattr(owner, name)

        def opened(*args, _real=real, _at=at, **kwargs):
            file = _real(*args, **kwargs)
            if not _writing(args, kwargs, _at):
                return file
            counts["write"] += 1
            if fail is not None and fail[0] == "write" and fail[1] == counts["write"]:
                return _FailingFile(file, fail[2])
            return file

        monkeypatch.setattr(owner, name, opened)


def _patch(monkeypatch, fail=None):
    """Count each operation's calls; raise ``fail = (operation, call number, fault)``."""
    counts = dict.fromkeys(OPERATIONS, 0)
    _patch_opens(monkeypatch, counts, fail)
    for name in OPERATIONS[1:]:
        real = getattr(os, name)

        def call(*args, _name=name, _real=real, **kwargs):
            counts[_name] += 1
            if fail is not None and fail[0] == _name and fail[1] == counts[_name]:
                raise fail[2]()
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, call)
    return counts


_PROFILES: dict[str, tuple[dict[str, int], object]] = {}


def _profile(writer, folder):
    """A writer's calls of each operation when it replaces an earlier output, and what
    its new version holds (version 2.0), measured once."""
    if writer not in _PROFILES:
        write, name = WRITERS[writer]
        write(folder / name, 1.0)
        with pytest.MonkeyPatch.context() as m:
            counts = _patch(m)
            write(folder / name, 2.0)
        _PROFILES[writer] = (counts, _snapshot(folder / name))
    return _PROFILES[writer]


@pytest.mark.parametrize("when", ["first", "middle", "last"])
@pytest.mark.parametrize("fault", FAULTS, ids=str)
@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("writer", WRITERS, ids=str)
def test_a_failed_write_leaves_the_old_or_the_new_version(
    tmp_path, tmp_path_factory, monkeypatch, writer, operation, fault, when
):
    write, name = WRITERS[writer]
    counts, new = _profile(writer, tmp_path_factory.mktemp(writer))
    if counts[operation] == 0:
        pytest.skip(f"{writer} makes no {operation} call")
    calls = {"first": 1, "middle": (counts[operation] + 1) // 2, "last": counts[operation]}
    order = ("first", "middle", "last")
    if calls[when] in {calls[w] for w in order[: order.index(when)]}:
        pytest.skip(f"{writer} makes {counts[operation]} {operation} call(s): a case above")
    target = tmp_path / name
    write(target, 1.0)
    old = _snapshot(target)
    with monkeypatch.context() as m:
        _patch(m, (operation, calls[when], FAULTS[fault]))
        expected = KeyboardInterrupt if fault == "interrupt" else RMSNormError
        with pytest.raises(expected) as info:
            write(target, 2.0)
    if expected is RMSNormError:
        assert "\n" not in str(info.value) and not isinstance(info.value, OSError)
        assert str(info.value).startswith(f"cannot write '{target}")  # or a file in it
    after = _snapshot(target)
    assert after == old or after == new
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
