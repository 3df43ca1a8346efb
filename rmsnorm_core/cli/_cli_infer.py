"""``rmsnorm infer PACKAGE.MODULE:CLASS [--init KEY=VALUE ...]``: what an implementation computes.

Imports the class, builds it with the ``--init`` keyword arguments (VALUE read
as JSON, else as a string), and asks each installed backend to measure it
(``infer_spec``: probed, never read off the class name, then verified in
float32, bfloat16 and float16). Prints the spec as JSON on stdout and, on
stderr, the preset it equals or the nearest presets and how they differ.
``--shape`` gives the
normalized block's shape where the object cannot tell (a function, or a linen
module, whose parameters exist only after it sees an input). Exit 2 when no
spec reproduces the implementation (the message says what was found), as on
bad usage: the implementation is an input the command refuses, not a check
that failed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from rmsnorm_core.cli._cli_args import command_parser, parse_overrides
from rmsnorm_core.cli._cli_paths import no_paths
from rmsnorm_core.infer._report import check_block
from rmsnorm_core.registry import _backends
from rmsnorm_core.spec._errors import RMSNormError, RMSNormUsageError
from rmsnorm_core.spec._spec import RMSNormSpec, presets


def add_parser(sub: Any) -> None:
    p = command_parser(
        sub,
        "infer",
        "measure the spec of an RMSNorm implementation (prints JSON)",
        __doc__,
        paths=no_paths,
    )
    p.add_argument(
        "target", metavar="PACKAGE.MODULE:CLASS", help="the class (or function) to measure"
    )
    p.add_argument(
        "--init", action="append", default=[], metavar="KEY=VALUE", help="constructor argument"
    )
    p.add_argument("--shape", type=int, nargs="+", metavar="N", help="the normalized block's shape")
    p.set_defaults(func=run)


def _block(shape: list[int] | None) -> tuple[int, ...] | None:
    """``--shape`` as a tuple, checked before anything is imported."""
    if shape is None:
        return None
    block = tuple(shape)
    try:
        check_block(block, "--shape")
    except RMSNormError as err:
        raise RMSNormUsageError(str(err)) from None
    return block


def _load(target: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise RMSNormUsageError(
            f"{target!r} is not PACKAGE.MODULE:CLASS (e.g. torch.nn:RMSNorm, "
            "transformers.models.llama.modeling_llama:LlamaRMSNorm)"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise RMSNormUsageError(f"cannot import {module_name!r}: {err}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RMSNormUsageError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def preset_named(spec: RMSNormSpec) -> str:
    """``equals the preset 'torch'``, or the presets that differ from ``spec`` in the
    fewest fields, with those fields (``no preset equals it; nearest: 'llama' (eps
    1e-05 here, 1e-06 there)``)."""
    apart = {name: spec.differences(p) for name, p in presets().items()}
    equal = [name for name, diff in apart.items() if not diff]
    if equal:
        return f"equals the preset {' and '.join(map(repr, equal))}"
    fewest = min(len(diff) for diff in apart.values())
    near = [
        f"{name!r} ({', '.join(f'{f} {a!r} here, {b!r} there' for f, (a, b) in diff.items())})"
        for name, diff in apart.items()
        if len(diff) == fewest
    ]
    return f"no preset equals it; nearest: {'; '.join(near)}"


def run(args: argparse.Namespace) -> int:
    shape = _block(args.shape)
    factory = _load(args.target)
    kwargs = parse_overrides(args.init, flag="--init")
    try:
        subject = factory(**kwargs) if isinstance(factory, type) else factory
    except Exception as err:  # the user's constructor refused the arguments
        raise RMSNormUsageError(
            f"{args.target}(**{kwargs}) failed: {type(err).__name__}: {err}"
        ) from None
    for backend in _backends.backends().values():
        spec = backend.infer(subject, shape)
        if spec is not None:
            print(spec.to_json(indent=2))
            print(preset_named(spec), file=sys.stderr)
            return 0
    hint = " (a function needs --shape)" if callable(subject) and shape is None else ""
    raise RMSNormError(
        f"no installed backend recognizes a {type(subject).__name__}{hint} "
        f"(backends: {', '.join(_backends.backends()) or 'none'})"
    )
