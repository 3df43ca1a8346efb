"""``rmsnorm convert SRC DST``: between Flax msgpack params, torch state dicts and
the neutral checkpoint.

Formats, from the extension unless ``--from``/``--to`` say otherwise:

- ``.msgpack``: Flax params (``flax.serialization.msgpack_serialize``); norms
  are the subtrees holding just ``scale`` (and ``bias``).
- ``.pt`` / ``.pth`` / ``.bin``: a torch state dict, read with
  ``torch.load(weights_only=True)``; norms are the keys matching
  ``--pattern`` (Hugging Face style ``...norm.weight`` by default).
- ``.safetensors``: the neutral checkpoint when its metadata says so (and by
  default when writing); ``--to torch`` writes a torch-style state dict.

Flax and torch files carry weights but no spec, so reading one needs
``--preset`` (and optionally ``--set FIELD=VALUE``). Names map between the
frameworks' list conventions (``layers_0`` <-> ``layers.0``) unless
``--names none``. The output is written atomically: a failed conversion leaves
no file behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._checkpoint import NeutralLayer, load, save, write_atomic
from ._cli_args import parse_overrides
from ._errors import RMSNormError, RMSNormUsageError
from ._names import NAME_MAPS
from ._presets import preset
from ._safetensors import deserialize, serialize
from ._spec import RMSNormSpec

FORMATS = ("flax", "torch", "neutral")
_EXTENSIONS = {".msgpack": "flax", ".pt": "torch", ".pth": "torch", ".bin": "torch"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "convert",
        help="convert norm weights between Flax, torch and neutral files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("src", help="input file")
    p.add_argument("dst", help="output file (written atomically)")
    p.add_argument("--from", dest="src_format", choices=FORMATS, help="input format")
    p.add_argument("--to", dest="dst_format", choices=FORMATS, help="output format")
    p.add_argument("--preset", help="spec of the norms in a flax/torch input (required there)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a preset field; VALUE is read as JSON",
    )
    p.add_argument("--pattern", default=None, help="regex of torch norm weight keys")
    p.add_argument(
        "--names",
        choices=["auto", *NAME_MAPS],
        default="auto",
        help="layer-name mapping (auto: flax<->torch list naming when crossing)",
    )
    p.set_defaults(func=run)


def _format(path: Path, given: str | None, reading: bool) -> str:
    if given:
        return given
    if path.suffix in _EXTENSIONS:
        return _EXTENSIONS[path.suffix]
    if path.suffix == ".safetensors":
        if reading and path.is_file():
            head = path.read_bytes()[:65536]
            return "neutral" if b'"rmsnorm-bridge"' in head else "torch"
        return "neutral"
    raise RMSNormUsageError(
        f"cannot tell the format of {str(path)!r} from its extension; pass "
        f"--{'from' if reading else 'to'} {{{','.join(FORMATS)}}}"
    )


def _spec(args: argparse.Namespace) -> RMSNormSpec:
    if not args.preset:
        raise RMSNormUsageError(
            "--preset is required to read a flax or torch file: it holds weights "
            "but no spec (e.g. --preset llama)"
        )
    return preset(args.preset).replace(**parse_overrides(args.set))


def _read(path: Path, fmt: str, args: argparse.Namespace) -> dict[str, NeutralLayer]:
    if not path.is_file():
        raise RMSNormError(f"input {str(path)!r} does not exist or is not a file")
    if fmt == "neutral":
        return load(path)
    spec = _spec(args)
    if fmt == "flax":
        from rmsnorm_flax import layers_from_params
        from rmsnorm_flax._files import read_msgpack

        return layers_from_params(read_msgpack(path), spec)
    from rmsnorm_torch import layers_from_state_dict
    from rmsnorm_torch._bridge import HF_NORM_KEYS, to_tensor
    from rmsnorm_torch._files import read_state_dict

    if path.suffix == ".safetensors":
        _, arrays = deserialize(str(path), path.read_bytes())
        state = {k: to_tensor(v) for k, v in arrays.items()}
    else:
        state = read_state_dict(path)
    return layers_from_state_dict(state, spec, pattern=args.pattern or HF_NORM_KEYS)


def _write(path: Path, fmt: str, layers: dict[str, NeutralLayer]) -> None:
    if fmt == "neutral":
        save(path, layers)
    elif fmt == "flax":
        from rmsnorm_flax._files import save_msgpack

        save_msgpack(path, layers)
    elif path.suffix == ".safetensors":
        tensors = {}
        for name, layer in layers.items():
            for key, value in (("weight", layer.scale), ("bias", layer.bias)):
                if value is not None:
                    tensors[f"{name}.{key}"] = value
        write_atomic(path, serialize(tensors, {"format": "pt"}))
    else:
        from rmsnorm_torch._files import save_state_dict

        save_state_dict(path, layers)


def run(args: argparse.Namespace) -> int:
    src, dst = Path(args.src), Path(args.dst)
    src_fmt, dst_fmt = _format(src, args.src_format, True), _format(dst, args.dst_format, False)
    layers = _read(src, src_fmt, args)
    names = args.names
    if names == "auto":
        names = {("flax", "torch"): "flax-to-torch", ("torch", "flax"): "torch-to-flax"}.get(
            (src_fmt, dst_fmt), "none"
        )
    mapping = NAME_MAPS[names]
    layers = {mapping(name): layer for name, layer in layers.items()}
    _write(dst, dst_fmt, layers)
    print(f"wrote {len(layers)} layer(s) to {dst} ({dst_fmt}): {', '.join(sorted(layers))}")
    return 0
