"""Tiny random-weight models of every supported family, for tests and benchmarks (never from the hub)."""

from __future__ import annotations

from typing import Any

import torch

_COMMON = dict(
    vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False, pad_token_id=0,
    bos_token_id=1, eos_token_id=2,
)

# family-specific settings; each keeps E in 4..8 and exercises the family's quirks
_FAMILY: dict[str, dict[str, Any]] = {
    "qwen2_moe": dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                      shared_expert_intermediate_size=32, decoder_sparse_step=1, mlp_only_layers=[1],
                      norm_topk_prob=False),
    "qwen3_moe": dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                      head_dim=8),
    "olmoe": dict(num_experts=8, num_experts_per_tok=2, norm_topk_prob=False),
    "mixtral": dict(num_local_experts=4, num_experts_per_tok=2),
    "phimoe": dict(num_local_experts=4, num_experts_per_tok=2, router_jitter_noise=0.01),
    "gpt_oss": dict(num_local_experts=4, num_experts_per_tok=2, head_dim=8, sliding_window=16,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                    layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
    "deepseek_v2": dict(n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=16, n_shared_experts=1,
                        first_k_dense_replace=1, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=None, qk_nope_head_dim=8,
                        qk_rope_head_dim=8, v_head_dim=8, topk_method="group_limited_greedy", n_group=4,
                        topk_group=2, routed_scaling_factor=1.5),
    "deepseek_v3": dict(n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=16, n_shared_experts=1,
                        first_k_dense_replace=1, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=16, qk_nope_head_dim=8,
                        qk_rope_head_dim=8, v_head_dim=8, n_group=4, topk_group=2, norm_topk_prob=True,
                        routed_scaling_factor=2.5),
}


def tiny_config(model_type: str, **overrides: Any) -> Any:
    """A tiny transformers config of `model_type` (hidden 32, 3 layers, 4-8 experts), `overrides` applied last."""
    from transformers import AutoConfig

    if model_type not in _FAMILY:
        raise ValueError(f"no tiny config for model_type {model_type!r}; known: {', '.join(sorted(_FAMILY))}")
    return AutoConfig.for_model(model_type, **{**_COMMON, **_FAMILY[model_type], **overrides})


def tiny_model(config: Any, seed: int = 0) -> Any:
    """A random causal LM from `config` with a fixed seed, in eval mode. Routers get a spread-out init so that
    routing is not near-uniform (zero-init routers would tie every expert), and DeepSeek-V3 correction biases
    are non-zero so that their effect is exercised."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if name.endswith((".mlp.gate", ".mlp.router")) and weight is not None:
                weight.copy_(torch.randn(weight.shape, generator=gen) * 0.5)
                bias = getattr(module, "e_score_correction_bias", None)
                if bias is not None:
                    bias.copy_(torch.randn(bias.shape, generator=gen) * 0.1)
    return model.eval()


def tiny_tokenizer(padding_side: str = "right") -> Any:
    """A character-level fast tokenizer (ids 4..98 = printable ASCII, 0 pad, 1 BOS, 2 EOS, 3 unknown) that
    prepends BOS; built locally, matches the tiny configs' vocab_size=128."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({chr(c): 4 + c - 32 for c in range(32, 127)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        padding_side=padding_side,
    )
