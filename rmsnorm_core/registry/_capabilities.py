"""What a backend offers ``rmsnorm convert`` and ``rmsnorm export``: its checkpoint
formats and its exporters, and the artifacts an export reports."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rmsnorm_core.io._neutral import NeutralLayer


@dataclasses.dataclass(frozen=True)
class CheckpointFormat:
    """A file layout ``rmsnorm convert`` reads or writes.

    Attributes:
        name: the ``--from``/``--to`` value (``"flax"``, ``"torch"``).
        extensions: file suffixes that select it (``(".msgpack",)``).
        naming: the list-naming convention of its layer names, ``"flax"``
            (``layers_0``) or ``"torch"`` (``layers.0``), for ``--names auto``.
        read: ``(path, spec, pattern, infer) -> {name: NeutralLayer}``; the
            file holds weights, ``spec`` gives the rest; ``pattern`` selects
            norm keys where the layout needs one (None: its default);
            ``infer`` names the spec fields the file may decide (among
            :data:`rmsnorm_core.INFERRED`).
        write: ``(path, layers) -> None``, atomically.
        needs_spec: the file holds weights only (``--preset`` required).
        spec_from_file: ``--preset`` is optional: without it the file says (a
            Hugging Face folder's config.json) and ``read`` gets ``spec=None``.
        detect: recognizes a path the extension cannot (a checkpoint folder).
    """

    name: str
    extensions: tuple[str, ...]
    naming: str
    read: Callable[[Path, Any, Any, Any], dict[str, NeutralLayer]]
    write: Callable[[Path, Mapping[str, NeutralLayer]], Any]
    needs_spec: bool = True
    spec_from_file: bool = False
    detect: Callable[[Path], bool] | None = None


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One exported artifact, run on an input of another shape than the export sample.

    Attributes:
        layer: the checkpoint's layer name.
        kind: the exporter's name, e.g. ``"onnx"``.
        path: where the artifact was written.
        max_abs: the largest absolute error against the float64 reference.
        max_rel: the largest relative error against it.
        passed: whether the artifact's output is within the tolerance table.
    """

    layer: str
    kind: str
    path: str
    max_abs: float
    max_rel: float
    passed: bool


@dataclasses.dataclass(frozen=True)
class Exporter:
    """A deployment artifact ``rmsnorm export`` writes (``--<name> OUT``).

    Attributes:
        name: the flag (``"onnx"`` gives ``--onnx OUT``).
        help: one line for ``--help``.
        add_arguments: adds this exporter's own options to the parser.
        check: validates the parsed options before anything is written
            (raises ``RMSNormUsageError``).
        export: ``(layers, out_path, options) -> [Artifact]``; writes
            atomically, one file per layer at :func:`artifact_path`, and
            checks each artifact against the reference.
    """

    name: str
    help: str
    export: Callable[[Mapping[str, NeutralLayer], Path, Any], list[Artifact]]
    add_arguments: Callable[[Any], None] = lambda parser: None
    check: Callable[[Any], None] = lambda options: None
