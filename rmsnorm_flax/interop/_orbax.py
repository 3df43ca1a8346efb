"""Orbax checkpoints of Flax params for ``rmsnorm convert`` (``orbax-checkpoint``, optional).

Read with ``orbax.checkpoint.StandardCheckpointer().restore(path)`` and no
target: the tree comes back as NumPy arrays, no model needed; the norms are
its subtrees of just ``scale`` (and ``bias``). Written as ``{"params": tree}``
of the layers (orbax writes a temporary folder and renames it when complete;
an existing folder is replaced only if this writer wrote it, and only once the new
one is whole).

Orbax stores no checksum of array data: a damaged data file can restore as
other numbers, silently. A checkpoint written here therefore carries, in
Orbax's custom metadata, the SHA-256 of each array's bytes
(``{"rmsnorm_bridge": {"sha256": {"params/layers_0/norm/scale": ...}}}``);
reading checks every one (:func:`rmsnorm_core.check_digests`: each restored
array must have a digest and each digest an array). The custom metadata is
read from ``_CHECKPOINT_METADATA`` here, not through Orbax, which logs a file
it cannot parse and goes on without it (dropping the digests with it): a
``_CHECKPOINT_METADATA`` that is not a JSON object is refused, whoever wrote it,
and so is an ``rmsnorm_bridge`` entry of the wrong shape. A checkpoint whose
custom metadata has no ``rmsnorm_bridge`` entry (or that has no
``_CHECKPOINT_METADATA``) cannot be told from one written elsewhere, which has
no digests: it is read as Orbax gives it.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from rmsnorm_core import (
    NeutralLayer,
    RMSNormError,
    RMSNormSpec,
    RMSNormUsageError,
    array_digest,
    check_digests,
    loads_strict,
    param_tree_from_layers,
    read_regular,
)
from rmsnorm_core.io._atomic_folder import replacing_folder
from rmsnorm_flax.interop._orbax_noise import quiet_reads_of, quiet_writes_to
from rmsnorm_flax.interop._orbax_owner import OURS, check_replaceable


def _checkpointer() -> Any:
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        from rmsnorm_core._install import install_command

        raise RMSNormUsageError(
            f"Orbax checkpoints need orbax-checkpoint: {install_command(['orbax-checkpoint'])}"
        ) from None
    return ocp.StandardCheckpointer()


def is_orbax(path: Path) -> bool:
    """A folder with Orbax's metadata files (a file test: nothing imported)."""
    return path.is_dir() and any((path / n).exists() for n in ("_CHECKPOINT_METADATA", "_METADATA"))


#: Orbax's JSON metadata files: read whole by Orbax, so bounded here first.
METADATA_FILES = ("_METADATA", "_CHECKPOINT_METADATA", "_sharding")
MAX_METADATA_BYTES = 16 * 1024 * 1024
MAX_ENTRIES = 100_000


def check_folder(path: Path) -> None:
    """Refuse what Orbax would hang on or read without bound, before it opens anything:
    a FIFO, device or socket anywhere in the folder (a link is judged by its target),
    metadata files over :data:`MAX_METADATA_BYTES`, more than :data:`MAX_ENTRIES`
    entries."""
    for count, entry in enumerate(path.rglob("*")):
        if count >= MAX_ENTRIES:
            raise RMSNormError(f"input {str(path)!r} holds more than {MAX_ENTRIES} entries")
        try:
            info = entry.stat()  # follows links: a link to /dev/zero is a device
        except OSError as err:
            raise RMSNormError(f"input {str(path)!r}: cannot read {entry.name!r}: {err}") from None
        if stat.S_ISDIR(info.st_mode):
            continue
        if not stat.S_ISREG(info.st_mode):
            raise RMSNormError(
                f"input {str(path)!r}: {str(entry.relative_to(path))!r} is not a regular file "
                "(a FIFO, device or socket); refusing to read it"
            )
        if entry.name in METADATA_FILES and info.st_size > MAX_METADATA_BYTES:
            raise RMSNormError(
                f"input {str(path)!r}: {entry.name} holds {info.st_size} bytes, more than "
                f"{MAX_METADATA_BYTES}; refusing to read it"
            )


def _norm_subtree(tree: Any) -> Any:
    """The part of a metadata tree holding norms (dicts of just ``scale`` / ``bias``), or
    None: those leaves alone are restored."""
    if not isinstance(tree, Mapping):
        return None
    if tree and set(tree) <= {"scale", "bias"}:
        return dict(tree)
    kept = {k: sub for k, v in tree.items() if (sub := _norm_subtree(v)) is not None}
    return kept or None


def _written_digests(path: Path) -> Any:
    """The digests this library wrote into the checkpoint's custom metadata, or None
    where there are none (a checkpoint written elsewhere).

    Raises:
        RMSNormError: ``_CHECKPOINT_METADATA`` is not JSON or not an object, or its
            ``custom_metadata`` (or our entry in it) has the wrong type.
    """
    file = path / "_CHECKPOINT_METADATA"
    if not file.exists():
        return None
    where = f"input {str(path)!r}: _CHECKPOINT_METADATA"
    meta = loads_strict(read_regular(file, where, MAX_METADATA_BYTES), where)
    if not isinstance(meta, dict):
        raise RMSNormError(f"{where} is a JSON {type(meta).__name__}; expected an object")
    custom = meta.get("custom_metadata")
    if custom is None:
        return None
    if not isinstance(custom, dict):
        raise RMSNormError(
            f"{where}: custom_metadata is a {type(custom).__name__}; expected an object"
        )
    ours = custom.get(OURS)
    if ours is None:
        return None
    if not isinstance(ours, dict) or "sha256" not in ours:
        raise RMSNormError(
            f"{where}: custom_metadata[{OURS!r}] is {repr(ours)[:80]}; expected an object "
            "with 'sha256' (what this library writes)"
        )
    return ours["sha256"]


def _restore_norms(path: Path) -> Any:
    """Restore the norm arrays only (an embedding beside them is never read); every
    array checked against its digest where the checkpoint carries digests."""
    digests = _written_digests(path)  # before Orbax, which would drop a damaged file
    step = _checkpointer().metadata(path)
    meta = step.item_metadata
    if meta is None:  # Orbax logs why and returns none: a damaged tree store, usually
        raise RMSNormError(
            f"input {str(path)!r}: Orbax cannot read the checkpoint's tree metadata "
            "(a damaged or partly written checkpoint)"
        )
    wanted = _norm_subtree(dict(meta.tree) if hasattr(meta, "tree") else meta)
    if wanted is None:
        tree: Any = {}
    else:
        tree = _restore(path, wanted)
    if digests is not None:
        check_digests(f"input {str(path)!r}", digests, dict(_leaves(tree)), "array")
    return tree


def _restore(path: Path, wanted: Any) -> Any:
    """The arrays of ``wanted`` (a metadata subtree), as NumPy arrays."""
    import numpy as np
    import orbax.checkpoint as ocp

    item = _tree_map(lambda m: np.zeros(m.shape, m.dtype), wanted)
    args = _tree_map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    restore = ocp.args.PyTreeRestore(item=item, restore_args=args, partial_restore=True)
    return ocp.PyTreeCheckpointer().restore(path, args=restore)


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``("params/layers_0/norm/scale", array)`` for each leaf of a tree of dicts."""
    if isinstance(tree, Mapping):
        return [leaf for k, v in tree.items() for leaf in _leaves(v, f"{prefix}{k}/")]
    return [(prefix[:-1], tree)]


def _tree_map(fn: Any, tree: Any) -> Any:
    """``fn`` over the leaves of a tree of dicts (Orbax's metadata leaves are not pytrees)."""
    if isinstance(tree, Mapping):
        return {k: _tree_map(fn, v) for k, v in tree.items()}
    return fn(tree)


def read_layers(
    path: Path, spec: RMSNormSpec, pattern: Any, infer: Collection[str]
) -> dict[str, NeutralLayer]:
    """The norms of an Orbax checkpoint of Flax params, as ``spec``: the folder checked
    by :func:`check_folder`, then the norm arrays restored and nothing else."""
    from rmsnorm_flax.interop._bridge import layers_from_params  # imports jax: only when read

    if not is_orbax(path):
        raise RMSNormError(f"input {str(path)!r} is not an Orbax checkpoint folder")
    check_folder(path)
    where = path.resolve()
    quiet_reads_of(where)
    try:
        tree = _restore_norms(where)
    except RMSNormUsageError:
        raise
    except Exception as err:  # orbax raises many types for a damaged folder
        time.sleep(0.1)  # the in-flight reads land now, not during shutdown (_orbax_noise)
        if isinstance(err, RMSNormError):  # ours already names the input
            raise
        raise RMSNormError(
            f"input {str(path)!r} cannot be restored by Orbax: {str(err)[:200]}"
        ) from None
    return layers_from_params(tree, spec, infer=infer)


def save_orbax(path: Path, layers: Mapping[str, NeutralLayer]) -> None:
    """``{"params": ...}`` of the layers as an Orbax checkpoint at ``path`` (a folder):
    a new or empty folder, or one this function wrote (``_orbax_owner.py``), else refused."""
    target = path.resolve()
    if not target.parent.is_dir():
        raise RMSNormError(
            f"cannot write {str(path)!r}: folder {str(target.parent)!r} does not exist"
        )
    check_replaceable(target, str(path))  # a folder it did not write is never replaced
    checkpointer = _checkpointer()
    tree = {"params": param_tree_from_layers(layers)}
    digests = {name: array_digest(array) for name, array in _leaves(tree)}
    with replacing_folder(target) as new:  # the old checkpoint stays whole until replaced
        quiet_writes_to(new)
        try:
            checkpointer.save(new, tree, custom_metadata={OURS: {"sha256": digests}})
            checkpointer.wait_until_finished()
        except Exception as err:  # orbax raises many types, some wrapping an OSError
            if isinstance(err, RMSNormError):
                raise
            raise RMSNormError(f"cannot write {str(path)!r}: {_write_failure(err)}") from None


def _write_failure(err: Exception) -> str:
    """Why a save failed, in a few words: the OS error where there is one (TensorStore
    reports it as ``[os_error_code='28']`` inside a long message naming staging paths)."""
    strerror = getattr(err, "strerror", None)
    if strerror:
        return str(strerror)
    code = re.search(r"os_error_code='(\d+)'", str(err))
    if code:
        return os.strerror(int(code.group(1)))
    return str(err).splitlines()[0][:200] if str(err) else type(err).__name__
