"""``rmsnorm export CKPT --torchscript OUT.pt --onnx OUT.onnx [--opset N]``.

Builds the torch modules of a neutral checkpoint, exports them, runs the
exported artifacts in TorchScript and ONNX Runtime on inputs of another shape
than the export sample, and prints the max error against core's reference for
each layer. A checkpoint with several layers gets one file per layer:
``OUT.<layer>.pt``. Exit 1 when an artifact is outside the tolerance table.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._checkpoint import load
from ._errors import RMSNormError, RMSNormUsageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export a neutral checkpoint to TorchScript and ONNX",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="neutral checkpoint (.safetensors)")
    p.add_argument("--torchscript", metavar="OUT.pt", help="TorchScript output path")
    p.add_argument("--onnx", metavar="OUT.onnx", help="ONNX output path")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument(
        "--exporter",
        choices=["dynamo", "torchscript"],
        default="dynamo",
        help="ONNX exporter (default dynamo)",
    )
    p.add_argument("--rank", type=int, default=None, help="input rank of the export sample")
    p.set_defaults(func=run)


def _folder_exists(path: str | None, flag: str) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise RMSNormUsageError(f"{flag} {path!r}: folder {str(parent)!r} does not exist")
    return out


def run(args: argparse.Namespace) -> int:
    if not args.torchscript and not args.onnx:
        raise RMSNormUsageError(
            "nothing to export: pass --torchscript OUT.pt and/or --onnx OUT.onnx"
        )
    torchscript = _folder_exists(args.torchscript, "--torchscript")
    onnx = _folder_exists(args.onnx, "--onnx")
    layers = load(args.checkpoint)
    if not layers:
        raise RMSNormError(f"checkpoint {args.checkpoint!r} holds no layers")
    from rmsnorm_torch._artifacts import export_and_check

    checks = export_and_check(
        layers,
        torchscript=torchscript,
        onnx=onnx,
        opset=args.opset,
        exporter=args.exporter,
        rank=args.rank,
    )
    print(f"\n{'layer':32s} {'artifact':12s} {'max abs err':>12s} {'max rel err':>12s}  result")
    for c in checks:
        print(
            f"{c.layer:32s} {c.kind:12s} {c.max_abs:12.3g} {c.max_rel:12.3g}  "
            f"{'pass' if c.passed else 'FAIL'}  {c.path}"
        )
    failed = [c for c in checks if not c.passed]
    print(f"\n{len(checks) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
