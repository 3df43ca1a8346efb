"""The upstream runners of ``rmsnorm verify``: each preset's own implementation, in torch.

``upstream-torch`` runs ``torch.nn.RMSNorm`` on the ``torch`` preset's
problems; with ``transformers`` installed, ``upstream-hf-<preset>`` runs Hugging
Face's ``LlamaRMSNorm``, ``GemmaRMSNorm``, ``Olmo2RMSNorm`` and
``T5LayerNorm`` on theirs (the table is ``_plugin.HF``, declared without torch).
``rmsnorm verify`` compares each one's output with ``torch-eager``'s bit for bit
(the ``bits`` rows) besides the reference checks.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

import torch

from rmsnorm_core.backends import NotApplicable
from rmsnorm_core.testing import Outcome, Problem, upstream_takes
from rmsnorm_torch.interop._bridge import to_numpy, to_tensor


def _hf_class(path: str) -> Any:
    module, name = path.rsplit(":", 1)
    return getattr(importlib.import_module(module), name)


def _run(preset: str, build: Callable[[int, float], Any], p: Problem) -> Outcome:
    if not upstream_takes(p, preset):
        raise NotApplicable(f"not a call {preset}'s upstream makes")
    module = build(p.x.shape[-1], p.spec.eps)
    with torch.no_grad(), warnings.catch_warnings():
        # torch says a float32 weight with a half input takes its unfused kernel
        warnings.simplefilter("ignore", UserWarning)
        module.weight.copy_(to_tensor(p.scale))
        return Outcome(to_numpy(module(to_tensor(p.x))))


def torch_run(p: Problem) -> Outcome:
    """``upstream-torch``: ``torch.nn.RMSNorm`` on a ``torch`` preset problem."""
    return _run("torch", lambda n, eps: torch.nn.RMSNorm(n, eps=eps), p)


def hf_run(preset: str, path: str, p: Problem) -> Outcome:
    """``upstream-hf-<preset>``: the Hugging Face class at ``path`` (``module:name``)."""
    return _run(preset, lambda n, eps: _hf_class(path)(n, eps=eps), p)
