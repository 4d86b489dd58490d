"""Published dimensions of the MoE checkpoints the ready configs name, as facts (no download needed).

Each entry is the architecture part of the checkpoint's own ``config.json`` (transformers 5 keyword
names), enough to build the model with random weights for benchmarks and to size a job's memory
before any weight is fetched. Rope scaling and similar position details are left out: they change
no shape and no cost. ``proxy_config`` shrinks the width only, keeping the real depth, experts,
top-k and vocabulary, so a CPU run still shows per-layer, per-step and per-vocabulary costs.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["SHAPES", "shape_names", "published_dimensions", "published_config", "proxy_config", "parameter_count",
           "random_model"]

SHAPES: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-30B-A3B": dict(
        model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
        moe_intermediate_size=768, num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
        head_dim=128, num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, decoder_sparse_step=1,
        mlp_only_layers=[], max_position_embeddings=40960, rms_norm_eps=1e-6, tie_word_embeddings=False),
    "allenai/OLMoE-1B-7B-0924": dict(
        model_type="olmoe", vocab_size=50304, hidden_size=2048, intermediate_size=1024, num_hidden_layers=16,
        num_attention_heads=16, num_key_value_heads=16, num_experts=64, num_experts_per_tok=8,
        norm_topk_prob=False, max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "mistralai/Mixtral-8x7B-v0.1": dict(
        model_type="mixtral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2,
        max_position_embeddings=32768, rms_norm_eps=1e-5, tie_word_embeddings=False),
    "Qwen/Qwen1.5-MoE-A2.7B": dict(
        model_type="qwen2_moe", vocab_size=151936, hidden_size=2048, intermediate_size=5632,
        moe_intermediate_size=1408, shared_expert_intermediate_size=5632, num_hidden_layers=24,
        num_attention_heads=16, num_key_value_heads=16, num_experts=60, num_experts_per_tok=4,
        norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[], max_position_embeddings=8192,
        rms_norm_eps=1e-6, tie_word_embeddings=False),
    "microsoft/Phi-3.5-MoE-instruct": dict(
        model_type="phimoe", vocab_size=32064, hidden_size=4096, intermediate_size=6400, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, num_local_experts=16, num_experts_per_tok=2,
        attention_bias=True, lm_head_bias=True, max_position_embeddings=131072, rms_norm_eps=1e-5,
        tie_word_embeddings=False),
    "deepseek-ai/DeepSeek-V2-Lite": dict(
        model_type="deepseek_v2", vocab_size=102400, hidden_size=2048, intermediate_size=10944,
        moe_intermediate_size=1408, num_hidden_layers=27, num_attention_heads=16, num_key_value_heads=16,
        n_routed_experts=64, n_shared_experts=2, num_experts_per_tok=6, first_k_dense_replace=1,
        kv_lora_rank=512, q_lora_rank=None, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128,
        topk_method="greedy", norm_topk_prob=False, routed_scaling_factor=1.0,
        max_position_embeddings=163840, rms_norm_eps=1e-6, tie_word_embeddings=False),
    "openai/gpt-oss-20b": dict(
        model_type="gpt_oss", vocab_size=201088, hidden_size=2880, intermediate_size=2880, num_hidden_layers=24,
        num_attention_heads=64, num_key_value_heads=8, head_dim=64, num_local_experts=32,
        num_experts_per_tok=4, sliding_window=128, max_position_embeddings=131072, rms_norm_eps=1e-5,
        tie_word_embeddings=False),
}

# keys that scale with the width in a proxy (head counts are handled apart, to keep them divisible)
_WIDTHS = ("hidden_size", "intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size",
           "head_dim", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim")


def shape_names() -> list[str]:
    return list(SHAPES)


def _entry(name: str) -> dict[str, Any]:
    for key, value in SHAPES.items():
        if key.lower() == name.lower() or key.split("/")[-1].lower() == name.lower():
            return dict(value)
    raise ValueError(f"no published shape for {name!r}; known: {', '.join(SHAPES)}")


def published_dimensions(name: str) -> dict[str, Any] | None:
    """The config.json keys of `name` (hub id, or its last part) when its shape is published here, else None."""
    try:
        return _entry(name)
    except ValueError:
        return None


def published_config(name: str) -> Any:
    """The transformers config of `name` (hub id, or its last part) at its published dimensions."""
    from transformers import AutoConfig

    kwargs = _entry(name)
    return AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)


def proxy_config(name: str, hidden_size: int = 256) -> Any:
    """`name`'s config at a reduced width: real depth, experts, top-k and vocabulary; every width scaled by
    ``hidden_size / published hidden``, head counts kept divisible (grouped-query ratio kept)."""
    from transformers import AutoConfig

    kwargs = _entry(name)
    scale = hidden_size / kwargs["hidden_size"]
    if scale > 1:
        raise ValueError(f"a proxy is narrower than the model: hidden_size {hidden_size} > {kwargs['hidden_size']}")
    for key in _WIDTHS:
        if kwargs.get(key):
            kwargs[key] = max(8, int(round(kwargs[key] * scale / 8)) * 8)
    kwargs["hidden_size"] = hidden_size
    heads, kv = kwargs["num_attention_heads"], kwargs["num_key_value_heads"]
    group = heads // kv
    head_dim = kwargs.get("head_dim") or hidden_size // heads
    new_heads = max(group, (max(1, hidden_size // max(head_dim, 1)) // group) * group)
    kwargs["num_attention_heads"], kwargs["num_key_value_heads"] = new_heads, new_heads // group
    if "head_dim" not in kwargs and kwargs["model_type"] not in ("deepseek_v2",):
        kwargs["head_dim"] = hidden_size // new_heads
    return AutoConfig.for_model(kwargs.pop("model_type"), **kwargs)


def parameter_count(config: Any) -> int:
    """Parameters of a model built from `config`, counted on the meta device (no memory used)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(math.prod(p.shape) for p in model.parameters())


def random_model(config: Any, device: str = "cpu", dtype: Any = None, seed: int = 0) -> Any:
    """A causal LM of `config` with random weights made directly on `device` (normal 0.02, norms 1, biases 0),
    in eval mode: a real shape's costs without its checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    with torch.device(device):  # built in place: a 30B model never passes through host memory
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight") or ".norm." in name or "layernorm" in name:
                param.fill_(1.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.normal_(0.0, 0.02, generator=generator)
    return model.eval()
