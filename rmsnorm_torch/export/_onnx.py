"""ONNX export through either exporter, ready for ONNX Runtime.

Decisions (documented here once):

- Graph: the decomposed pattern ``Cast(fp32) -> Pow -> ReduceMean -> Add ->
  Sqrt -> Div -> Mul`` that ONNX Runtime fuses into SimplifiedLayerNormalization.
- Opset >= 23 with the dynamo exporter: the native ``RMSNormalization`` op, but
  only where its semantics equal the spec's (see ``_native.native_eligible``).
- The caller's module is never touched: a deep copy is exported (in eval
  mode, its norms marked ``_onnx_mode``: ``OnnxExport.FUSABLE``, or ``NATIVE`` where the
  native op may be used), so
  threads still running the module, or exporting it, see no change.
- Quiet: the exporters' deprecation warnings and the dynamo exporter's
  ``torchvision is not installed`` log lines are silenced at their source
  (warnings filters and that logger's level, for the export's duration).
- Dynamic dims: every axis that is not normalized is dynamic (batch, sequence,
  spatial); normalized axes are fixed by the weights.
- bfloat16: ONNX Runtime's CPU kernels have no bfloat16 arithmetic, so a
  bfloat16 module is exported with float32 inputs and outputs; inside, the
  input is cast to bfloat16 and back (a no-op on bfloat16 values), the spec's
  rounding points stay as Casts to bfloat16, and the output is rounded to
  bfloat16 and returned as float32. The result holds exactly the bfloat16
  values eager PyTorch gives, up to float32-versus-float32 arithmetic order.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Dict, List

import torch
from torch import Tensor, nn

from rmsnorm_core import RMSNormError, write_atomic
from rmsnorm_torch.kernels._resolve import OnnxExport
from rmsnorm_torch.nn._modules import RMSNorm

TORCHSCRIPT_OPSETS = range(17, 21)
DYNAMO_OPSETS = range(17, 24)
EXPORTERS = ("dynamo", "torchscript")


class Float32Boundary(nn.Module):
    """Wraps a bfloat16 module so its ONNX graph takes and returns float32."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        y = self.module(x.to(torch.bfloat16))
        return y.to(torch.float32)


def _check_args(opset: Any, exporter: Any, example: Any) -> None:
    if exporter not in EXPORTERS:
        raise RMSNormError(
            f"exporter={exporter!r} is not accepted; expected one of "
            f"{', '.join(map(repr, EXPORTERS))}"
        )
    valid = TORCHSCRIPT_OPSETS if exporter == "torchscript" else DYNAMO_OPSETS
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in valid:
        raise RMSNormError(
            f"opset={opset!r} is not accepted with exporter={exporter!r}; expected an int from "
            f"{valid.start} to {valid.stop - 1}"
        )
    if not isinstance(example, Tensor):
        raise RMSNormError(f"example_input must be a torch.Tensor, got {type(example).__name__}")


def _dynamic_dims(module: nn.Module, example: Tensor) -> List[int]:
    axes = getattr(getattr(module, "module", module), "axes", [-1])
    rank = example.dim()
    normalized = {a % rank for a in axes}
    return [d for d in range(rank) if d not in normalized]


def export_onnx(
    module: nn.Module,
    path: str | os.PathLike[str],
    example_input: Tensor,
    opset: int = 18,
    exporter: str = "dynamo",
    dynamic: bool = True,
) -> Path:
    """Export ``module`` (an RMSNorm of this package) to an ONNX file.

    Args:
        module: the module; exported in eval mode, unchanged.
        path: where to write the ``.onnx`` file (written whole or not at all).
        example_input: a sample input; its non-normalized dims become dynamic
            when ``dynamic`` is True.
        opset: 17-20 with ``exporter="torchscript"``, 17-23 with ``"dynamo"``.
        exporter: ``"dynamo"`` (torch.export based) or ``"torchscript"``.
        dynamic: make every non-normalized axis dynamic.

    Returns:
        The path written.

    Raises:
        rmsnorm_core.RMSNormError: a bad exporter, opset or example.
    """
    _check_args(opset, exporter, example_input)
    target = Path(path)
    model = _private_copy(module, native=exporter == "dynamo" and opset >= 23)
    sample = example_input
    if example_input.dtype == torch.bfloat16:  # bfloat16 weights alone need no boundary
        model = Float32Boundary(model).eval()
        sample = example_input.to(torch.float32)
    dims = _dynamic_dims(module, sample) if dynamic else []
    with torch.no_grad():
        model(sample)  # raises RMSNormError on a bad example, before any export

    def write(tmp: Path) -> None:
        with _quiet():
            _export(model, sample, tmp, opset, exporter, dims)

    return write_atomic(target, write)


def _private_copy(module: nn.Module, *, native: bool) -> nn.Module:
    """A deep copy in eval mode, its norms marked as exporting (and allowed the native
    op if ``native``)."""
    model = copy.deepcopy(module).eval()
    for sub in model.modules():
        if isinstance(sub, RMSNorm):
            sub._onnx_mode = OnnxExport.NATIVE if native else OnnxExport.FUSABLE
    return model


def _export(
    model: nn.Module, sample: Tensor, path: Path, opset: int, exporter: str, dims: List[int]
) -> None:
    if exporter == "torchscript":
        axes: Dict[str, Dict[int, str]] = {
            "x": {d: f"dim{d}" for d in dims},
            "y": {d: f"dim{d}" for d in dims},
        }
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            opset_version=opset,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes=axes,
        )
        return
    # by position, not by name: the model's forward may call its input anything
    # (``nn.Sequential``'s is ``input``)
    shapes = ({d: torch.export.Dim.DYNAMIC for d in dims},)
    # The dynamo exporter builds opset 18 graphs; its own down-conversion to 17
    # fails (ReduceMean's axes are still a Constant node then) and silently
    # keeps 18. After optimize=True the axes are initializers, and ONNX's
    # version converter succeeds, so 17 is converted here from the saved 18.
    build = max(opset, 18)
    program = torch.onnx.export(
        model,
        (sample,),
        dynamo=True,
        opset_version=build,
        input_names=["x"],
        output_names=["y"],
        dynamic_shapes=shapes,
        optimize=True,
        verbose=False,
    )
    program.save(str(path))
    if build != opset:
        import onnx
        from onnx import version_converter

        converted = version_converter.convert_version(onnx.load(str(path)), opset)
        for node in converted.graph.node:  # an opset-18 attribute the converter leaves behind
            if node.op_type.startswith("Reduce"):
                kept = [a for a in node.attribute if a.name != "noop_with_empty_axes" or a.i]
                del node.attribute[:]
                node.attribute.extend(kept)
        onnx.checker.check_model(converted)
        onnx.save(converted, str(path))


_QUIET_LOCK = threading.Lock()
_QUIET_DEPTH = [0]
# Logs "torchvision is not installed. Skipping torchvision::nms" (and the like)
# at WARNING for every op table it builds: noise in every export.
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' own chatter at its source: deprecation warnings, and the
    registration logger's level raised while any export runs (restored after the last)."""
    logger = logging.getLogger(_REGISTRATION_LOGGER)
    with _QUIET_LOCK:
        if _QUIET_DEPTH[0] == 0:
            _QUIET_DEPTH.append(logger.level)
            logger.setLevel(logging.ERROR)
        _QUIET_DEPTH[0] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        with _QUIET_LOCK:
            _QUIET_DEPTH[0] -= 1
            if _QUIET_DEPTH[0] == 0:
                logger.setLevel(_QUIET_DEPTH.pop())
