"""Which folders ``save_orbax`` may replace: absent, empty, or a checkpoint it wrote.

A checkpoint this writer wrote carries an ``rmsnorm_bridge`` entry (the digest of each
array) in its ``_CHECKPOINT_METADATA``, its ``_METADATA`` tree holds exactly the arrays
those digests name, each a norm's ``scale`` or ``bias`` under ``params``, and its top
level holds only the files Orbax writes. Anything else (a user's folder that happens to
hold a file named ``_METADATA``, a model checkpoint written elsewhere) is refused,
never replaced, as the Hugging Face writer refuses a model folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rmsnorm_core import RMSNormError, loads_strict, read_regular

#: The custom metadata entry this library writes.
OURS = "rmsnorm_bridge"

#: What Orbax (OCDBT format) writes at a checkpoint's top level.
_ORBAX_ENTRIES = re.compile(
    r"_CHECKPOINT_METADATA|_METADATA|_sharding|commit_success\.txt|manifest\.ocdbt|d"
    r"|descriptor|array_metadatas|ocdbt\.process_\d+"
)
_MAX_BYTES = 16 * 1024 * 1024


def check_replaceable(path: Path, shown: str) -> None:
    """Refuse to write over ``path`` unless it is absent, empty or a checkpoint this
    writer wrote.

    Args:
        path: the resolved target folder.
        shown: the target as the caller named it, for the message.

    Raises:
        RMSNormError: ``path`` holds anything else (one line naming it).
    """
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and (not any(path.iterdir()) or _written_here(path)):
        return
    raise RMSNormError(
        f"cannot write {shown!r}: it exists and is not an Orbax checkpoint this writer "
        "wrote; a writer replaces only what it wrote (remove it yourself or choose "
        "another path)"
    )


def _written_here(path: Path) -> bool:
    """True when every top-level entry is Orbax's and the stored tree is exactly the
    norm arrays our digests name."""
    if not all(_ORBAX_ENTRIES.fullmatch(p.name) for p in path.iterdir()):
        return False
    digests = _ours(_json(path / "_CHECKPOINT_METADATA"), "custom_metadata", OURS, "sha256")
    tree = _ours(_json(path / "_METADATA"), "tree_metadata")
    if not isinstance(digests, dict) or not digests or not isinstance(tree, dict):
        return False
    names = set()
    for leaf in tree.values():
        keys = [k.get("key") for k in _ours(leaf, "key_metadata") or [] if isinstance(k, dict)]
        names.add("/".join(map(str, keys)))
    return names == set(digests) and all(
        n.startswith("params/") and n.rsplit("/", 1)[-1] in ("scale", "bias") for n in names
    )


def _json(file: Path) -> Any:
    """The file's JSON, or None where it is missing or not JSON (not ours, then)."""
    if not file.is_file():
        return None
    try:
        return loads_strict(read_regular(file, str(file), _MAX_BYTES), str(file))
    except (RMSNormError, OSError):
        return None


def _ours(doc: Any, *keys: str) -> Any:
    """``doc[k1][k2]...``, or None where a level is missing or not an object."""
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc
