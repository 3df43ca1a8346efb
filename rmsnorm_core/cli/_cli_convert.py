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
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

from rmsnorm_core.cli._cli_args import command_parser, parse_overrides, spec_fields
from rmsnorm_core.cli._cli_paths import CommandPaths
from rmsnorm_core.io._atomic import write_atomic
from rmsnorm_core.io._checkpoint import load, save
from rmsnorm_core.io._hf_checkpoint import is_hf_folder, target_folder
from rmsnorm_core.io._hf_checkpoint import read_layers as hf_read
from rmsnorm_core.io._hf_checkpoint import write_layers as hf_write
from rmsnorm_core.io._layouts import (
    HF_NORM_KEYS,
    INFERRED,
    compile_pattern,
    layers_from_state_arrays,
    state_arrays_from_layers,
)
from rmsnorm_core.io._names import NAME_MAPS
from rmsnorm_core.io._neutral import NeutralLayer
from rmsnorm_core.io._safetensors import read_file, read_header, serialize
from rmsnorm_core.registry import _backends
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError, RMSNormWarning
from rmsnorm_core.spec._spec import RMSNormSpec, preset


def _read_neutral(path: Path, spec: Any, pattern: Any, infer: Any) -> dict[str, NeutralLayer]:
    return load(path)


NEUTRAL = _backends.CheckpointFormat(
    "neutral", (".safetensors",), "", _read_neutral, save, needs_spec=False
)


def _read_torch_safetensors(
    path: Path, spec: RMSNormSpec, pattern: str | None, infer: frozenset[str]
) -> dict[str, NeutralLayer]:
    regex = compile_pattern(pattern or HF_NORM_KEYS)
    keys = set()
    for key in read_header(path).entries:
        match = regex.match(key)
        if match:
            keys |= {key, f"{match.group('layer')}.bias"}
    _, arrays = read_file(path, keys.__contains__)
    return layers_from_state_arrays(arrays, spec, pattern=pattern or HF_NORM_KEYS, infer=infer)


def _write_torch_safetensors(path: Path, layers: dict[str, NeutralLayer]) -> None:
    write_atomic(path, serialize(state_arrays_from_layers(layers), {"format": "pt"}))


TORCH_SAFETENSORS = _backends.CheckpointFormat(
    "torch", (".safetensors",), "torch", _read_torch_safetensors, _write_torch_safetensors
)


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


def _formats() -> dict[str, list[_backends.CheckpointFormat]]:
    """Format name -> the formats of that name (the built-in ones first)."""
    table: dict[str, list[_backends.CheckpointFormat]] = {
        "neutral": [NEUTRAL],
        "torch": [TORCH_SAFETENSORS],
        "hf": [HF_FOLDER],
    }
    for backend in _backends.backends().values():
        for fmt in backend.formats:
            table.setdefault(fmt.name, []).append(fmt)
    return table


HF_FOLDER = _backends.CheckpointFormat(
    "hf", (".json",), "torch", hf_read, hf_write, spec_from_file=True, detect=is_hf_folder
)


def _pick(path: Path, given: str | None, reading: bool) -> _backends.CheckpointFormat:
    flag = "--from" if reading else "--to"
    if given is None and reading:
        for fmt in _detecting(path):
            if fmt.detect is not None and fmt.detect(path):
                return fmt
    if given is None and not reading and path.suffix == ".json":
        raise RMSNormUsageError(
            f"DST {str(path)!r}: a .json output names no format (it would become a Hugging "
            "Face folder called so); pass --to hf with a folder path, or a .safetensors file"
        )
    if path.suffix == ".safetensors" and given in (None, "neutral", "torch"):
        # built in: no backend (and no framework import) needed to tell or read them
        if given == "torch" or (
            given is None
            and reading
            and path.is_file()
            and read_header(path).metadata.get("format") != "rmsnorm-bridge"
        ):
            return TORCH_SAFETENSORS
        return NEUTRAL
    table = _formats()
    if given is not None and given not in table:
        raise RMSNormUsageError(
            f"{flag} {given!r} is not a known format; accepted: {', '.join(sorted(table))}"
            f"{_backends.not_installed_hint()}"
        )
    names = [given] if given else list(table)
    matches = [f for n in names for f in table[n] if path.suffix in f.extensions]
    if given and not matches:
        return table[given][-1]  # e.g. --to torch out.weights: the backend's own writer
    if not matches:
        raise RMSNormUsageError(
            f"cannot tell the format of {str(path)!r} from its extension; pass "
            f"{flag} {{{','.join(sorted(table))}}}{_backends.not_installed_hint()}"
        )
    return matches[0]


def load_neutral(path: str, what: str) -> dict[str, NeutralLayer]:
    """The layers of the neutral checkpoint ``path`` (``rmsnorm verify --weights``,
    ``rmsnorm export``); a checkpoint of another format ``convert`` reads is refused
    with the command that converts it, not as a damaged file.

    Raises:
        RMSNormError: ``what`` names the argument in the message.
    """
    try:
        return load(path)
    except RMSNormError:
        fmt = NEUTRAL
        if Path(path).is_file() or Path(path).is_dir():  # never a FIFO or a device
            try:
                fmt = _pick(Path(path), None, True)
            except RMSNormError:  # no format knows it: the neutral reader's error stands
                pass
        if fmt is NEUTRAL:
            raise
    preset = " --preset NAME" if fmt.needs_spec and not fmt.spec_from_file else ""
    dst = shlex.quote(str(Path(path).with_name(f"{Path(path).stem}-norms.safetensors")))
    raise RMSNormError(
        f"{what} {path!r} is in the {fmt.name} format, not a neutral checkpoint; "
        f"convert it first: rmsnorm convert {shlex.quote(path)} {dst}{preset}"
    )


def _detecting(path: Path) -> list[_backends.CheckpointFormat]:
    """Formats that recognize a path by its contents: built-in first, then backends'
    (asked only for a folder: files go by extension, with no framework import)."""
    out = [HF_FOLDER]
    if path.is_dir():
        out += [f for b in _backends.backends().values() for f in b.formats if f.detect]
    return out


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
    src_fmt, dst_fmt = _pick(src, args.src_format, True), _pick(dst, args.dst_format, False)
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
