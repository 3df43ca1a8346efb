"""``rmsnorm convert SRC DST``: between the neutral checkpoint and the formats backends offer.

Formats, from the extension unless ``--from``/``--to`` say otherwise:

- ``.safetensors``: the neutral checkpoint when its metadata says so (and by
  default when writing); otherwise (or with ``--to torch``) a torch-style
  state dict (``<layer>.weight``), read and written here without torch.
- every format a backend registers (``rmsnorm_core.backends``): with the
  packages of this project, ``.msgpack`` Flax params (``flax``) and
  ``.pt`` / ``.pth`` / ``.bin`` torch state dicts read with
  ``weights_only=True`` (``torch``).

Flax and torch files carry weights but no spec, so reading one needs
``--preset`` (and optionally ``--set FIELD=VALUE``); the file decides the
axes' count, bias and parameter dtype unless ``--set`` names them, in which
case the file must agree. Norm keys of a state dict match ``--pattern``
(Hugging Face style ``...norm.weight`` by default). Names map between the
frameworks' list conventions (``layers_0`` <-> ``layers.0``, exactly
invertible) unless ``--names none``. The output is written atomically: a
failed conversion leaves no file behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path
from typing import Any

from rmsnorm_core.cli._cli_args import command_parser, parse_overrides, spec_fields
from rmsnorm_core.cli._cli_formats import NEUTRAL, pick_format
from rmsnorm_core.cli._cli_paths import CommandPaths
from rmsnorm_core.io._hf_checkpoint import target_folder
from rmsnorm_core.io._layouts import INFERRED
from rmsnorm_core.io._names import NAME_MAPS
from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.registry import _backends
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError, RMSNormWarning
from rmsnorm_core.spec._spec import RMSNormSpec, preset


def add_parser(sub: Any) -> None:
    p = command_parser(
        sub,
        "convert",
        "convert norm weights between the neutral checkpoint, Flax and torch files",
        __doc__,
        paths=paths,
    )
    p.add_argument("src", help="input file")
    p.add_argument("dst", help="output file (written atomically)")
    p.add_argument("--from", dest="src_format", metavar="FORMAT", help="input format")
    p.add_argument("--to", dest="dst_format", metavar="FORMAT", help="output format")
    p.add_argument("--preset", help="spec of the norms in a flax/torch input (required there)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a preset field; VALUE is read as JSON",
    )
    p.add_argument("--pattern", default=None, help="regex of state-dict norm weight keys")
    p.add_argument(
        "--names",
        choices=["auto", *NAME_MAPS],
        default="auto",
        help="layer-name mapping (auto: flax<->torch list naming when crossing)",
    )
    p.set_defaults(func=run)


def paths(args: argparse.Namespace) -> CommandPaths:
    """The file or folder ``convert`` reads (SRC) and the one it writes (DST): with
    ``--to hf`` the folder the writer replaces whole (a DST naming the folder's index
    replaces the index's folder)."""
    dst = target_folder(args.dst) if args.dst_format == "hf" else args.dst
    return CommandPaths(inputs={"SRC": args.src}, outputs={"DST": dst})


def _spec(
    args: argparse.Namespace, optional: bool = False
) -> tuple[RMSNormSpec | None, frozenset[str]]:
    """The spec of the input's norms, and the fields the file may decide (not ``--set``)."""
    if optional and not args.preset:
        if args.set:
            raise RMSNormUsageError("--set needs --preset: it overrides a preset's fields")
        return None, INFERRED
    if not args.preset:
        raise RMSNormUsageError(
            "--preset is required to read a flax or torch file: it holds weights "
            "but no spec (e.g. --preset llama)"
        )
    try:
        base = preset(args.preset)
        overrides = parse_overrides(args.set, fields=spec_fields())
        return base.replace(**overrides), INFERRED - set(overrides)
    except RMSNormError as err:
        raise RMSNormUsageError(str(err)) from None


def _target_name(
    name: str,
    layer: NeutralLayer,
    src: _backends.CheckpointFormat,
    dst: _backends.CheckpointFormat,
    names: str,
) -> str:
    """The layer's name in the output. ``--names auto``: a layer recorded as coming from
    the output's naming lands at its recorded path; else its name is mapped from the
    naming it came in (recorded, or the input format's) to the output's."""
    if names != "auto":
        return NAME_MAPS[names](name)
    origin, _, path = (layer.source or "").partition(":")
    if dst.naming and origin == dst.naming and path:
        return path
    pair = (origin or src.naming, dst.naming)
    mapped = {("flax", "torch"): "flax-to-torch", ("torch", "flax"): "torch-to-flax"}.get(
        pair, "none"
    )
    return NAME_MAPS[mapped](name)


def run(args: argparse.Namespace) -> int:
    src, dst = Path(args.src), Path(args.dst)
    if not (src.is_file() or src.is_dir()):
        raise RMSNormError(f"input {str(src)!r} does not exist or is not a regular file or folder")
    src_fmt = pick_format(src, args.src_format, reading=True)
    dst_fmt = pick_format(dst, args.dst_format, reading=False)
    if src.is_dir() and src_fmt.detect is None:
        raise RMSNormError(
            f"input {str(src)!r} is a folder; {src_fmt.name!r} files are single files"
        )
    spec, infer = _spec(args, src_fmt.spec_from_file) if src_fmt.needs_spec else (None, INFERRED)
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        layers = src_fmt.read(src, spec, args.pattern, infer)
    for note in notes:  # what the reader left out, and why: one line each
        if issubclass(note.category, RMSNormWarning):
            print(f"note: {note.message}", file=sys.stderr)
        else:
            warnings.showwarning(note.message, note.category, note.filename, note.lineno)
    if src_fmt is not NEUTRAL:  # record where each layer came from
        layers = {
            n: dataclasses.replace(la, source=la.source or f"{src_fmt.naming or src_fmt.name}:{n}")
            for n, la in layers.items()
        }
    renamed: dict[str, NeutralLayer] = {}
    for name, layer in layers.items():
        target = _target_name(name, layer, src_fmt, dst_fmt, args.names)
        if target in renamed:
            raise RMSNormError(
                f"two layers map to the name {target!r} under --names {args.names}; pass "
                "--names none"
            )
        renamed[target] = layer
    dst_fmt.write(dst, renamed)
    print(f"wrote {len(renamed)} layer(s) to {dst} ({dst_fmt.name}): {', '.join(sorted(renamed))}")
    return 0
