"""``replace_norms``: swap every RMSNorm-like submodule of a model for ours, in one call
(what it replaces, and how it decides, is in its docstring)."""

from __future__ import annotations

from collections.abc import Callable
from typing import List, Optional, Tuple, Union

from torch import nn

from rmsnorm_core import FLOAT32_EPS, ReplaceReport, RMSNormError, RMSNormSpec, replace_each
from rmsnorm_torch.interop._bridge import torch_norm_spec
from rmsnorm_torch.interop._infer import _HOOKS, _params, check_probe_sizes, infer_spec
from rmsnorm_torch.nn._modules import RMSNorm

#: Hook dicts of ``nn.Module`` carried to the replacement (shared, so that the
#: handles the caller holds still remove them), besides the forward/backward ones.
_STATE_HOOKS = (
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


def _candidates(model: nn.Module, infer: bool) -> List[Tuple[str, nn.Module]]:
    out = []
    for name, sub in model.named_modules(remove_duplicate=False):  # every path of a shared one
        if not name or isinstance(sub, RMSNorm) or any(True for _ in sub.children()):
            continue
        if isinstance(sub, nn.RMSNorm) or (infer and "norm" in type(sub).__name__.lower()):
            out.append((name, sub))
    return out


def _keeps_state(sub: nn.Module) -> Optional[str]:
    """Why ours would change ``sub``'s state_dict, or None."""
    own = dict(sub.named_parameters(recurse=False))
    renamed = [n for n in own if n not in ("weight", "bias")]
    if renamed:
        return (
            f"its parameter {renamed[0]!r} would be saved as 'weight' by ours: the state_dict "
            "keys would change"
        )
    persistent = [
        n for n, _ in sub.named_buffers(recurse=False) if n not in sub._non_persistent_buffers_set
    ]
    if persistent:
        return f"it has persistent buffers {persistent} that ours would drop from the state_dict"
    return None


def _carry_hooks(old: nn.Module, new: nn.Module) -> None:
    """The old module's hooks on the new one: the very dicts, so handles still remove them."""
    for name in (*_HOOKS, *_STATE_HOOKS):
        object.__setattr__(new, name, getattr(old, name))
    new._is_full_backward_hook = old._is_full_backward_hook


def _replacement(sub: nn.Module, infer: bool) -> Union[Tuple[RMSNorm, RMSNormSpec], str]:
    """Ours for ``sub``, with its spec; or why ``sub`` stays."""
    reason = _keeps_state(sub)
    if reason is not None:
        return reason
    try:
        params = _params(sub)
        check_probe_sizes(params)
        # torch's own class computes its fields' formula: read them exactly (a probe
        # finds the spec within the tolerance table, and so may round an eps such as
        # np.float32(1e-5) to 1e-05, which float64 inputs then show)
        known = not infer or type(sub) is nn.RMSNorm
        spec = torch_norm_spec(sub) if known else infer_spec(sub)
    except RMSNormError as err:  # not an RMSNorm (a LayerNorm, a head, ...)
        return str(err)
    if params:
        block = tuple(next(iter(params.values())).shape)
    else:
        block = tuple(getattr(sub, "normalized_shape", ()))
    device = next((p.device for p in params.values()), None)
    new = RMSNorm.from_spec(spec, block, device=device)
    if type(sub) is nn.RMSNorm:
        new.eps = sub.eps  # as given: None is the input dtype's epsilon, as in torch's
    elif isinstance(sub, nn.RMSNorm) and sub.eps is None and spec.eps == FLOAT32_EPS:
        new.eps = None  # torch's: the input dtype's epsilon (float64's for float64 inputs)
    for ours, theirs in (("weight", "scale"), ("bias", "bias")):
        if theirs in params:
            setattr(new, ours, params[theirs])  # the same Parameter object
    new.train(sub.training)
    _carry_hooks(sub, new)
    if getattr(sub, "_is_hf_initialized", False):
        # Hugging Face's initializer skips a module so marked; unmarked, ours (class name
        # "RMSNorm") falls to its generic branch, which sets a weight of ones: for a
        # zero-centred norm (Qwen3-Next, Gemma-style offsets) a scale of 2, not 1
        new._is_hf_initialized = True
    return new, spec


def replace_norms(model: nn.Module, *, infer: bool = True) -> ReplaceReport:
    """Replace, in place, every RMSNorm-like submodule of ``model`` with ``rmsnorm_torch.RMSNorm``.

    Candidates are leaf modules whose class name contains "norm" (Hugging
    Face's ``LlamaRMSNorm``, ``GemmaRMSNorm``, ``T5LayerNorm``,
    ``torch.nn.RMSNorm`` with or without a weight; a LayerNorm too, which the
    probe refuses). Each candidate's spec is *measured* by :func:`infer_spec`
    (and verified against the module in float32, bfloat16 and float16), never
    read off its class name; the probes run on a copy, so no module's
    parameters, buffers or hooks see them, and a scale too large for a norm is
    refused before any probe.

    The model's contract is kept: the replacement shares the module's
    ``Parameter`` objects (optimizer state and tied weights survive), its
    ``state_dict`` keys, its training mode and its hooks (the same hook dicts:
    handles taken before still remove them; a hook's ``module`` argument is the
    replacement). A module shared at several paths gets one replacement, shared
    likewise. A model on the meta device is replaced on it (then ``to_empty`` +
    ``load_state_dict`` as usual). A candidate is left in place, with the reason
    in ``report.skipped``, where no spec reproduces it, or where ours would
    change its state_dict (a scale named other than ``weight``, a persistent
    buffer).

    A module is measured as it is, and also through a copy cast to bfloat16
    where its float32 weights leave two specs equal (Hugging Face's
    ``T5LayerNorm`` rounds to its weight's dtype, a promoting norm does not: the
    same bits in float32), so replacing before or after casting the model gives
    the same model.

    Args:
        model: any module tree (e.g. a Hugging Face model).
        infer: measure each candidate's spec as above (default); with False
            only ``torch.nn.RMSNorm`` modules are replaced. A module whose class is
            ``torch.nn.RMSNorm`` itself (not a subclass) is read, not measured, either
            way: its fields are its formula, and its eps is kept as given.

    Returns:
        A :class:`ReplaceReport`: ``{module path: spec}`` of what was replaced,
        and ``.skipped``, ``{module path: reason}`` of what was not.
    """

    def put_at(name: str) -> Callable[[nn.Module], None]:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        return lambda new: setattr(parent, child, new)

    candidates = [(name, sub, put_at(name)) for name, sub in _candidates(model, infer)]
    return replace_each(candidates, lambda sub: _replacement(sub, infer))
