"""Orbax checkpoints of Flax params for ``rmsnorm convert`` (``orbax-checkpoint``, optional).

Read with ``orbax.checkpoint.StandardCheckpointer().restore(path)`` and no
target: the tree comes back as NumPy arrays, no model needed; the norms are
its subtrees of just ``scale`` (and ``bias``). Written as ``{"params": tree}``
of the layers (orbax writes a temporary folder and renames it when complete;
an existing folder is replaced only once the new one is whole).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from rmsnorm_core import (
    NeutralLayer,
    RMSNormError,
    RMSNormSpec,
    RMSNormUsageError,
    param_tree_from_layers,
)


def _checkpointer() -> Any:
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        raise RMSNormUsageError(
            "Orbax checkpoints need orbax-checkpoint: pip install 'rmsnorm-bridge[orbax]'"
        ) from None
    return ocp.StandardCheckpointer()


def is_orbax(path: Path) -> bool:
    """A folder with Orbax's metadata files (a file test: nothing imported)."""
    return path.is_dir() and any((path / n).exists() for n in ("_CHECKPOINT_METADATA", "_METADATA"))


def read_layers(
    path: Path, spec: RMSNormSpec, pattern: Any, infer: Collection[str]
) -> dict[str, NeutralLayer]:
    """The norms of an Orbax checkpoint of Flax params, as ``spec``."""
    from rmsnorm_flax.interop._bridge import layers_from_params  # imports jax: only when read

    if not is_orbax(path):
        raise RMSNormError(f"input {str(path)!r} is not an Orbax checkpoint folder")
    checkpointer = _checkpointer()
    try:
        tree = checkpointer.restore(path.resolve())
    except Exception as err:  # orbax raises many types for a damaged folder
        raise RMSNormError(
            f"input {str(path)!r} cannot be restored by Orbax: {str(err)[:200]}"
        ) from None
    return layers_from_params(tree, spec, infer=infer)


def save_orbax(path: Path, layers: Mapping[str, NeutralLayer]) -> None:
    """``{"params": ...}`` of the layers as an Orbax checkpoint at ``path`` (a folder)."""
    target = path.resolve()
    if not target.parent.is_dir():
        raise RMSNormError(
            f"cannot write {str(path)!r}: folder {str(target.parent)!r} does not exist"
        )
    if target.exists() and not is_orbax(target):
        # the checkpoint replaces the target whole: only an earlier checkpoint may go
        raise RMSNormError(
            f"cannot write {str(path)!r}: it exists and is not an Orbax checkpoint; a writer "
            "replaces only what it wrote (remove it yourself or choose another path)"
        )
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        checkpointer = _checkpointer()
        checkpointer.save(staging / "ck", {"params": param_tree_from_layers(layers)})
        checkpointer.wait_until_finished()
        if target.exists():
            old = staging / "old"
            target.rename(old)
        (staging / "ck").rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
