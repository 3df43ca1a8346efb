"""``replace_norms``: swap every RMSNorm-like submodule of a model for ours, in one call
(what it replaces, and how it decides, is in its docstring)."""

from __future__ import annotations

from typing import Dict, List, Tuple

from torch import nn

from rmsnorm_core import RMSNormError, RMSNormSpec
from rmsnorm_torch.interop._bridge import torch_norm_spec
from rmsnorm_torch.interop._infer import _params, infer_spec
from rmsnorm_torch.nn._modules import RMSNorm


def _candidates(model: nn.Module, infer: bool) -> List[Tuple[str, nn.Module]]:
    out = []
    for name, sub in model.named_modules():
        if not name or isinstance(sub, RMSNorm) or any(True for _ in sub.children()):
            continue
        if isinstance(sub, nn.RMSNorm) or (infer and "norm" in type(sub).__name__.lower()):
            out.append((name, sub))
    return out


def replace_norms(model: nn.Module, *, infer: bool = True) -> Dict[str, RMSNormSpec]:
    """Replace, in place, every RMSNorm-like submodule of ``model`` with ``rmsnorm_torch.RMSNorm``.

    Candidates are leaf modules whose class name contains "norm" (Hugging
    Face's ``LlamaRMSNorm``, ``GemmaRMSNorm``, ``T5LayerNorm``,
    ``torch.nn.RMSNorm``; a LayerNorm too, which the probe refuses). Each
    candidate's spec is *measured* by :func:`infer_spec` (and verified against
    the module in float32, bfloat16 and float16), never read off its class
    name; a candidate that no spec describes is left in place. The
    replacement shares the module's ``Parameter`` objects, so optimizer state
    and tied weights survive and ``state_dict`` keys do not change.

    Args:
        model: any module tree (e.g. a Hugging Face model).
        infer: measure each candidate's spec as above (default); with False
            only ``torch.nn.RMSNorm`` modules are replaced (their spec is known).

    Returns:
        ``{module path: spec}`` of what was replaced.
    """
    replaced: Dict[str, RMSNormSpec] = {}
    for name, sub in _candidates(model, infer):
        try:
            spec = infer_spec(sub) if infer else torch_norm_spec(sub)
        except RMSNormError:
            continue  # not an RMSNorm (a LayerNorm, a norm with other parameters, ...)
        params = _params(sub)
        block = tuple(next(iter(params.values())).shape) if params else tuple(sub.normalized_shape)
        new = RMSNorm.from_spec(spec, block, device=next((p.device for p in params.values()), None))
        for ours, theirs in (("weight", "scale"), ("bias", "bias")):
            if theirs in params:
                setattr(new, ours, params[theirs])  # the same Parameter object
        new.train(sub.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        replaced[name] = spec
    return replaced
