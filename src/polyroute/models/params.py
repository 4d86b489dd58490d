"""Parameter counts of fused-expert MoE models, from a transformers config dict (no torch).

Per-family parameter arithmetic (DeepSeek latent attention, qwen2 biases, phimoe lm_head bias) is model
knowledge, so it lives here next to the adapters; it imports no torch, so selection can use it.

A selection's trainable parameter count is `experts * expert_params (+ routers * router_params)`;
`param_counts_from_config` derives the per-expert and per-router sizes, the MoE layer indices and the
model's total from `AutoConfig.from_pretrained(path).to_dict()` (a dict with defaults filled in), for
the layouts of transformers 5: `gate_up_proj[E, 2I, H]` + `down_proj[E, H, I]` (GPT-OSS: transposed,
plus biases). The totals are checked against `from_config` models in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polyroute.models.info import ModelInfo

# the model types counted here: the same as the adapters cover (a test checks it)
MODEL_TYPES = ("qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "phimoe", "gpt_oss", "deepseek_v2", "deepseek_v3")


def _get(cfg: Mapping[str, Any], *keys: str, default: Any = KeyError) -> Any:
    """The first of `keys` present (and not None) in cfg; a one-line error naming them otherwise."""
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    if default is KeyError:
        raise ValueError(f"model config lacks {' / '.join(keys)} (model_type {cfg.get('model_type')!r})")
    return default


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _attention(cfg: Mapping[str, Any], family: str) -> int:
    h, nh = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    if family.startswith("deepseek"):  # multi-head latent attention
        bias = bool(cfg.get("attention_bias", False))
        qk = int(cfg["qk_nope_head_dim"]) + int(cfg["qk_rope_head_dim"])
        v, kv_rank, q_rank = int(cfg["v_head_dim"]), int(cfg["kv_lora_rank"]), cfg.get("q_lora_rank")
        if q_rank is None:
            q = _linear(h, nh * qk, False)
        else:
            q = _linear(h, int(q_rank), bias) + int(q_rank) + _linear(int(q_rank), nh * qk, False)
        kv = _linear(h, kv_rank + int(cfg["qk_rope_head_dim"]), bias) + kv_rank + _linear(kv_rank, nh * (qk - int(cfg["qk_rope_head_dim"]) + v), False)
        return q + kv + _linear(nh * v, h, bias)
    nkv = int(_get(cfg, "num_key_value_heads", default=nh))
    hd = int(_get(cfg, "head_dim", default=h // nh))
    if family == "qwen2_moe":
        qkv_bias, o_bias = bool(cfg.get("qkv_bias", True)), False
    else:
        qkv_bias = o_bias = bool(cfg.get("attention_bias", False))
    out = (
        _linear(h, nh * hd, qkv_bias) + 2 * _linear(h, nkv * hd, qkv_bias) + _linear(nh * hd, h, o_bias)
    )
    if family == "qwen3_moe":
        out += 2 * hd  # q_norm, k_norm on the head dim
    elif family == "olmoe":
        out += h + (h // nh) * nkv  # q_norm on the hidden size, k_norm on the kv width
    elif family == "gpt_oss":
        out += nh  # attention sinks
    return out


def _gated_mlp(h: int, inter: int, bias: bool = False) -> int:
    return 2 * _linear(h, inter, bias) + _linear(inter, h, bias)


def _moe_layers(cfg: Mapping[str, Any], family: str, n_layers: int) -> list[int]:
    if family in ("qwen2_moe", "qwen3_moe"):
        step, dense = int(cfg.get("decoder_sparse_step", 1)), set(cfg.get("mlp_only_layers") or [])
        return [i for i in range(n_layers) if i not in dense and (i + 1) % step == 0]
    if family.startswith("deepseek"):  # dense first layers, then MoE every moe_layer_freq layers
        first, freq = int(cfg.get("first_k_dense_replace") or 0), int(cfg.get("moe_layer_freq") or 1)
        return [i for i in range(n_layers) if i >= first and i % freq == 0]
    return list(range(n_layers))


def param_counts_from_config(config: Mapping[str, Any], model: str = "") -> ModelInfo:
    """The ModelInfo of a fused-expert MoE from its config dict (model types in MODEL_TYPES): layers,
    expert count and parameter sizes; the adapters add the routing facts (`MoEAdapter.info`)."""
    family = str(config.get("model_type", ""))
    if family not in MODEL_TYPES:
        raise ValueError(f"model_type={family!r} is not a supported MoE family {list(MODEL_TYPES)}")
    h, n_layers = int(_get(config, "hidden_size")), int(_get(config, "num_hidden_layers"))
    vocab = int(_get(config, "vocab_size"))
    n_exp = int(_get(config, "num_experts", "num_local_experts", "n_routed_experts"))
    moe_inter = int(_get(config, "moe_intermediate_size", "intermediate_size"))
    if family in ("olmoe", "mixtral", "phimoe", "gpt_oss"):
        moe_inter = int(_get(config, "intermediate_size"))  # these name the expert width intermediate_size
    dense_inter = int(_get(config, "intermediate_size"))
    mlp_bias = bool(config.get("mlp_bias", False)) and family == "deepseek_v2"

    expert = 3 * h * moe_inter + ((2 * moe_inter + h) if family == "gpt_oss" else 0)
    router = n_exp * h + (n_exp if family == "gpt_oss" else 0)
    if family == "qwen2_moe":  # shared expert and its sigmoid gate
        moe_extra = _gated_mlp(h, int(_get(config, "shared_expert_intermediate_size"))) + h
    elif family.startswith("deepseek"):
        shared = int(config.get("n_shared_experts") or 0)
        moe_extra = _gated_mlp(h, moe_inter * shared, mlp_bias) if shared else 0
    else:
        moe_extra = 0
    norm = 2 * h if family == "phimoe" else h  # phimoe uses LayerNorm (weight and bias)

    moe_layers = _moe_layers(config, family, n_layers)
    n_moe = len(moe_layers)
    total = n_layers * (_attention(config, family) + 2 * norm)
    total += n_moe * (n_exp * expert + router + moe_extra)
    total += (n_layers - n_moe) * _gated_mlp(h, dense_inter, mlp_bias)
    total += vocab * h + norm  # embeddings and final norm
    if not config.get("tie_word_embeddings", False):
        total += vocab * h
    if family == "phimoe" and config.get("lm_head_bias", False):
        total += vocab
    return ModelInfo(
        moe_layers=tuple(moe_layers),
        num_experts=n_exp,
        expert_params=expert,
        router_params=router,
        total_params=total,
        model=model,
        model_type=family,
        num_hidden_layers=n_layers,
    )
