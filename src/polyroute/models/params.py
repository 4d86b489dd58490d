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
from dataclasses import asdict, dataclass
from typing import Any

# the model types counted here: the same as the adapters cover (a test checks it)
MODEL_TYPES = ("qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "phimoe", "gpt_oss", "deepseek_v2", "deepseek_v3")


@dataclass(frozen=True)
class ParamCounts:
    """What a selector needs to know about the model: its MoE layers and parameter sizes."""

    moe_layers: tuple[int, ...]  # model layer index of each MoE layer, increasing
    num_experts: int  # routed experts per MoE layer
    expert_params: int  # parameters of one routed expert
    router_params: int  # parameters of one MoE layer's router
    total_params: int  # every parameter of the model (tied embeddings once)
    model: str = ""
    model_type: str = ""

    def __post_init__(self) -> None:
        layers = tuple(int(x) for x in self.moe_layers)
        object.__setattr__(self, "moe_layers", layers)
        if not layers:
            raise ValueError(f"model {self.model or '?'} has no MoE layers")
        if list(layers) != sorted(set(layers)) or layers[0] < 0:
            raise ValueError(f"moe_layers={list(layers)} must be distinct non-negative layer indices, increasing")
        for name in ("num_experts", "expert_params", "total_params"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 1")
        if self.router_params < 0:
            raise ValueError(f"router_params={self.router_params!r} must be >= 0")
        routed = len(layers) * (self.num_experts * self.expert_params + self.router_params)
        if routed > self.total_params:
            raise ValueError(f"total_params={self.total_params} is smaller than the experts and routers ({routed})")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ParamCounts:
        """Build from a mapping holding these fields (e.g. a model-info JSON); other keys are ignored."""
        names = ("moe_layers", "num_experts", "expert_params", "router_params", "total_params")
        missing = [n for n in names if n not in record]
        if missing:
            raise ValueError(f"model info lacks {missing}")
        model = record.get("model") or record.get("model_id") or ""
        return cls(**{n: record[n] for n in names}, model=str(model), model_type=str(record.get("model_type", "")))

    def to_record(self) -> dict[str, Any]:
        """JSON-ready fields, the inverse of from_record."""
        return {**asdict(self), "moe_layers": list(self.moe_layers)}

    @property
    def total_experts(self) -> int:
        return len(self.moe_layers) * self.num_experts

    def trainable(self, n_experts: int, n_router_layers: int = 0) -> int:
        """Parameters made trainable by `n_experts` routed experts and the routers of `n_router_layers` layers."""
        return int(n_experts) * self.expert_params + int(n_router_layers) * self.router_params


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
    if family.startswith("deepseek"):
        return list(range(int(cfg.get("first_k_dense_replace", 0)), n_layers))
    return list(range(n_layers))


def param_counts_from_config(config: Mapping[str, Any], model: str = "") -> ParamCounts:
    """ParamCounts of a fused-expert MoE from its config dict (model types in MODEL_TYPES)."""
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
    return ParamCounts(
        moe_layers=tuple(moe_layers),
        num_experts=n_exp,
        expert_params=expert,
        router_params=router,
        total_params=total,
        model=model,
        model_type=family,
    )
