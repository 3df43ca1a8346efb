"""What ``torch.compile`` needs to keep the spec's rounding points.

Inductor fuses ``h * inv -> cast to bf16/fp16 -> * g`` into one kernel and by
default skips the intermediate rounding, so a ``cast_order="before_scale"``
spec (Llama, ONNX) in half precision would come out rounded once, like
Gemma's. ``emulate_precision_casts`` keeps the rounding; pass these options:
``torch.compile(module, fullgraph=True, options=COMPILE_OPTIONS)``.
"""

from __future__ import annotations

from typing import Dict

COMPILE_OPTIONS: Dict[str, bool] = {"emulate_precision_casts": True}
"""Inductor options under which compiled modules round exactly where the spec does."""
