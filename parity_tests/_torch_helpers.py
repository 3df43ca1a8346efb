"""NumPy <-> torch conversion (bfloat16 included) for the torch tests."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import torch

from rmsnorm_torch import RMSNorm


def to_torch(array: np.ndarray | None, *, grad: bool = False) -> torch.Tensor | None:
    if array is None:
        return None
    if array.dtype == ml_dtypes.bfloat16:
        t = torch.from_numpy(array.view(np.int16).copy()).view(torch.bfloat16)
    else:
        t = torch.from_numpy(array.copy())
    return t.requires_grad_(grad)


def to_numpy(t: torch.Tensor | None) -> np.ndarray | None:
    if t is None:
        return None
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def bits(t: torch.Tensor) -> torch.Tensor:
    """``t``'s bits, as integers of its width: ``torch.equal`` on them tells -0 from +0
    (and one NaN from another), where on the floats it does not."""
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()])


def module_for(problem) -> RMSNorm:
    """An RMSNorm of ``problem.spec`` carrying the problem's parameters."""
    from rmsnorm_core import param_shape

    module = RMSNorm.from_spec(problem.spec, param_shape(problem.spec, problem.x.shape))
    with torch.no_grad():
        if problem.scale is not None:
            module.weight.copy_(to_torch(problem.scale))
        if problem.bias is not None:
            module.bias.copy_(to_torch(problem.bias))
    return module


HF_NORMS = {
    "llama": "transformers.models.llama.modeling_llama:LlamaRMSNorm",
    "gemma": "transformers.models.gemma.modeling_gemma:GemmaRMSNorm",
    "olmo2": "transformers.models.olmo2.modeling_olmo2:Olmo2RMSNorm",
    "t5": "transformers.models.t5.modeling_t5:T5LayerNorm",
}
"""The Hugging Face norm each preset reproduces, imported only when a test builds one:
transformers imports triton, which must first see the TRITON_INTERPRET the Triton tests
set (_triton_setup.py)."""


def upstream_pair(preset: str, n: int) -> tuple[RMSNorm, torch.nn.Module]:
    """``(ours, theirs)`` with eps 1e-6: the preset's module and the norm it reproduces,
    ``torch.nn.RMSNorm`` for ``"torch"``, else :data:`HF_NORMS`'s (skipped without
    transformers)."""
    import pytest

    from rmsnorm_core import RMSNormSpec

    ours = RMSNorm.from_spec(RMSNormSpec.preset(preset).replace(eps=1e-6), n)
    if preset == "torch":
        return ours, torch.nn.RMSNorm(n, eps=1e-6)
    module, name = HF_NORMS[preset].split(":")
    return ours, getattr(pytest.importorskip(module), name)(n, eps=1e-6)
