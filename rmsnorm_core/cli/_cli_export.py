"""``rmsnorm export CKPT --<artifact> OUT ...``: deployment artifacts of a neutral checkpoint.

Each artifact kind comes from a backend (``rmsnorm_core.backends``); with
the packages of this project: ``--torchscript OUT.pt`` and ``--onnx
OUT.onnx`` (``--opset``, ``--exporter``). Every argument is validated before
anything is written; each artifact is written atomically, loaded back and
run on an input of another shape than the export sample, and its max error
against core's reference is printed. A checkpoint with several layers gets
one file per layer: ``OUT.<layer>.pt``. Exit 1 when an artifact is outside
the tolerance table, 2 on bad usage.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rmsnorm_core.cli._cli_args import command_parser
from rmsnorm_core.cli._cli_formats import load_neutral
from rmsnorm_core.cli._cli_paths import CommandPaths, refuse_collisions
from rmsnorm_core.registry import _backends
from rmsnorm_core.registry._artifact_paths import artifact_path
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError
from rmsnorm_core.spec._plan import canonical_axes

#: The highest ``--rank``: the check input has at least 3**(rank - axes) elements.
MAX_RANK = 8


def _exporters() -> dict[str, _backends.Exporter]:
    return {e.name: e for b in _backends.backends().values() for e in b.exporters}


def add_parser(sub: Any, *, with_backends: bool) -> None:
    """Add ``export``; its artifact flags come from the backends when ``with_backends``
    (loading them imports the frameworks, so only ``rmsnorm export`` does)."""
    p = command_parser(
        sub,
        "export",
        "export a neutral checkpoint to deployment artifacts (TorchScript, ONNX, ...)",
        __doc__,
        paths=paths,
    )
    p.add_argument("checkpoint", help="neutral checkpoint (.safetensors)")
    p.add_argument(
        "--rank", type=int, default=None, help="input rank of the export sample (default: minimal)"
    )
    if with_backends:
        for exporter in _exporters().values():
            p.add_argument(f"--{exporter.name}", metavar="OUT", help=exporter.help)
            exporter.add_arguments(p)
    p.set_defaults(func=run)


def paths(args: argparse.Namespace) -> CommandPaths:
    """The checkpoint ``export`` reads and the artifact paths it writes."""
    outputs = {f"--{name}": getattr(args, name, None) for name in _exporters()}
    return CommandPaths(inputs={"CHECKPOINT": args.checkpoint}, outputs=outputs)


def _output(path: str, flag: str) -> Path:
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise RMSNormUsageError(f"--{flag} {path!r}: folder {str(parent)!r} does not exist")
    if out.is_dir():
        raise RMSNormUsageError(f"--{flag} {path!r} is a folder; give a file path")
    return out


def run(args: argparse.Namespace) -> int:
    exporters = _exporters()
    wanted = {name: getattr(args, name, None) for name in exporters}
    wanted = {name: path for name, path in wanted.items() if path is not None}
    if not wanted:
        flags = " and/or ".join(f"--{n} OUT" for n in exporters) or "an artifact flag"
        hint = _backends.not_installed_hint()
        raise RMSNormUsageError(f"nothing to export: pass {flags}{hint}")
    outputs = {name: _output(path, name) for name, path in wanted.items()}
    if args.rank is not None and not 1 <= args.rank <= MAX_RANK:
        raise RMSNormUsageError(
            f"--rank {args.rank} is not accepted; expected an int from 1 to {MAX_RANK}"
        )
    for name in outputs:
        exporters[name].check(args)
    layers = load_neutral(args.checkpoint, "checkpoint")
    if not layers:
        raise RMSNormError(f"checkpoint {args.checkpoint!r} holds no layers")
    planned = {  # one file per layer: named after the layers, so known only now
        f"--{name} (layer {layer_name!r})": artifact_path(out, layer_name, len(layers))
        for name, out in outputs.items()
        for layer_name in layers
    }
    refuse_collisions({"CHECKPOINT": args.checkpoint}, planned)
    if args.rank is not None:
        for layer_name, layer in layers.items():
            try:
                canonical_axes(layer.spec.axes, args.rank)
            except RMSNormError as err:
                raise RMSNormUsageError(
                    f"--rank {args.rank}: layer {layer_name!r}: {err}"
                ) from None
    artifacts = []
    for name, out in outputs.items():
        artifacts.extend(exporters[name].export(layers, out, args))
    print(f"\n{'layer':32s} {'artifact':12s} {'max abs err':>12s} {'max rel err':>12s}  result")
    for a in artifacts:
        print(
            f"{a.layer:32s} {a.kind:12s} {a.max_abs:12.3g} {a.max_rel:12.3g}  "
            f"{'pass' if a.passed else 'FAIL'}  {a.path}"
        )
    failed = [a for a in artifacts if not a.passed]
    print(f"\n{len(artifacts) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
