"""The upstream runners of ``rmsnorm verify``: each preset's own implementation, in torch.

``upstream-torch`` runs ``torch.nn.RMSNorm`` on the ``torch`` preset's
problems; with ``transformers`` installed, ``upstream-hf-<preset>`` runs Hugging
Face's ``LlamaRMSNorm``, ``GemmaRMSNorm``, ``Olmo2RMSNorm`` and
``T5LayerNorm`` on theirs. ``rmsnorm verify`` compares each one's output with
``torch-eager``'s bit for bit (the ``bits`` rows) besides the reference checks.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable
from typing import Any, List

import torch

from rmsnorm_core.backends import NotApplicable, Runner
from rmsnorm_core.testing import Outcome, Problem, upstream_takes
from rmsnorm_torch.interop._bridge import to_numpy, to_tensor

#: preset -> the Hugging Face class (module:name) it reproduces
HF = {
    "llama": "transformers.models.llama.modeling_llama:LlamaRMSNorm",
    "gemma": "transformers.models.gemma.modeling_gemma:GemmaRMSNorm",
    "olmo2": "transformers.models.olmo2.modeling_olmo2:Olmo2RMSNorm",
    "t5": "transformers.models.t5.modeling_t5:T5LayerNorm",
}


def _hf(path: str) -> Callable[[int, float], Any]:
    def build(n: int, eps: float) -> Any:
        module, name = path.rsplit(":", 1)
        return getattr(importlib.import_module(module), name)(n, eps=eps)

    return build


def _torch(n: int, eps: float) -> Any:
    return torch.nn.RMSNorm(n, eps=eps)


def _runner(preset: str, build: Callable[[int, float], Any]) -> Callable[[Problem], Outcome]:
    def run(p: Problem) -> Outcome:
        if not upstream_takes(p, preset):
            raise NotApplicable(f"not a call {preset}'s upstream makes")
        module = build(p.x.shape[-1], p.spec.eps)
        with torch.no_grad(), warnings.catch_warnings():
            # torch says a float32 weight with a half input takes its unfused kernel
            warnings.simplefilter("ignore", UserWarning)
            module.weight.copy_(to_tensor(p.scale))
            return Outcome(to_numpy(module(to_tensor(p.x))))

    return run


def upstream_runners() -> List[Runner]:
    """``upstream-torch``, and the Hugging Face ones where transformers is installed."""
    out = [Runner("upstream-torch", _runner("torch", _torch), residual=False, upstream="torch")]
    if importlib.util.find_spec("transformers") is not None:
        for preset, path in HF.items():
            run = _runner(preset, _hf(path))
            out.append(Runner(f"upstream-hf-{preset}", run, residual=False, upstream=preset))
    return out
