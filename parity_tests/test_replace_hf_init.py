"""After ``replace_norms``, Hugging Face's ``init_weights()`` leaves the model as it leaves
the original (hostile probe of issue 31): HF skips a module marked ``_is_hf_initialized``;
the replacement was unmarked, so HF's generic branch (any class named "...RMSNorm")
set its weight to ones, a scale of 2 for Qwen3-Next's zero-centred norms."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rmsnorm_torch import replace_norms  # noqa: E402


def test_init_weights_after_replace_norms_changes_nothing_the_original_keeps():
    if not hasattr(transformers, "Qwen3NextConfig"):
        pytest.skip("this transformers has no Qwen3-Next")
    torch.manual_seed(0)
    cfg = transformers.Qwen3NextConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, vocab_size=64, linear_num_value_heads=2,
        linear_num_key_heads=1, linear_key_head_dim=16, linear_value_head_dim=16,
        num_experts=2, num_experts_per_tok=1, moe_intermediate_size=16,
        shared_expert_intermediate_size=16, layer_types=["linear_attention", "full_attention"],
    )  # fmt: skip
    model = transformers.Qwen3NextForCausalLM(cfg).eval()
    with torch.no_grad():  # trained-looking norms: a re-initialization would show
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1)
    ours = copy.deepcopy(model)
    assert len(replace_norms(ours)) > 0
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ours(ids).logits)
        for m in (model, ours):
            m.init_weights()
        assert torch.equal(model(ids).logits, ours(ids).logits)
