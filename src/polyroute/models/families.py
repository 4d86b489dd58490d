"""One small adapter per architecture family (transformers 5 module layout)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polyroute.models import rules
from polyroute.models.adapter import MoEAdapter

Pin = torch.Tensor | None


class Qwen2MoeAdapter(MoEAdapter):
    """Qwen1.5/Qwen2-MoE: softmax top-k (optionally renormalised), plus a gated shared expert (not routed)."""

    family = "qwen2_moe"
    model_types = ("qwen2_moe",)

    @classmethod
    def moe_layer_indices(cls, config: Any) -> list[int]:
        skip = set(config.mlp_only_layers or [])
        step = config.decoder_sparse_step
        if config.num_experts <= 0:
            return []
        return [i for i in range(config.num_hidden_layers) if i not in skip and (i + 1) % step == 0]

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: Pin, barred: Pin) -> tuple[torch.Tensor, torch.Tensor]:
        return rules.softmax_topk(logits, self.top_k, bool(self.config.norm_topk_prob), forced, barred)


class Qwen3MoeAdapter(Qwen2MoeAdapter):
    """Qwen3-MoE: same routing and layer rule as Qwen2-MoE, no shared expert."""

    family = "qwen3_moe"
    model_types = ("qwen3_moe",)


class OlmoeAdapter(MoEAdapter):
    """OLMoE: softmax top-k, renormalised only when norm_topk_prob."""

    family = "olmoe"
    model_types = ("olmoe",)

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: Pin, barred: Pin) -> tuple[torch.Tensor, torch.Tensor]:
        return rules.softmax_topk(logits, self.top_k, bool(self.config.norm_topk_prob), forced, barred)


class MixtralAdapter(MoEAdapter):
    """Mixtral: softmax top-k, always renormalised."""

    family = "mixtral"
    model_types = ("mixtral",)

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: Pin, barred: Pin) -> tuple[torch.Tensor, torch.Tensor]:
        return rules.softmax_topk(logits, self.top_k, True, forced, barred)


class PhimoeAdapter(MoEAdapter):
    """Phi-3.5-MoE: sparsemixer top-2; the router is an nn.Linear called `router`."""

    family = "phimoe"
    model_types = ("phimoe",)
    router_attr = "router"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.top_k != 2:
            raise ValueError(f"phimoe: sparsemixer always routes 2 experts, config num_experts_per_tok={self.top_k}")

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: Pin, barred: Pin) -> tuple[torch.Tensor, torch.Tensor]:
        return rules.sparsemixer(logits, float(self.config.router_jitter_noise), forced, barred)


class GptOssAdapter(MoEAdapter):
    """GPT-OSS: router with bias; top-k on logits, softmax over the k; experts carry biases."""

    family = "gpt_oss"
    model_types = ("gpt_oss",)
    router_attr = "router"
    expert_param_names = ("gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias")

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: Pin, barred: Pin) -> tuple[torch.Tensor, torch.Tensor]:
        return rules.topk_softmax(logits, self.top_k, forced, barred)


class DeepseekV2Adapter(MoEAdapter):
    """DeepSeek-V2(-Lite): first `first_k_dense_replace` layers dense, then MoE every `moe_layer_freq`
    layers (the checkpoints' own rule); softmax scores, greedy or group-limited top-k, scaled weights;
    shared experts always on (not routed)."""

    family = "deepseek_v2"
    model_types = ("deepseek_v2",)

    @classmethod
    def moe_layer_indices(cls, config: Any) -> list[int]:
        first = config.first_k_dense_replace or 0
        freq = getattr(config, "moe_layer_freq", 1) or 1
        return [i for i in range(config.num_hidden_layers) if i >= first and i % freq == 0]

    group_scored_by = 1  # experts that make a group's score: its best one (V2), its best two (V3)

    def _grouped(self) -> bool:
        return getattr(self.config, "topk_method", "noaux_tc") != "greedy"

    def check_pins(self, layer: int, forced: set[int], barred: set[int]) -> None:
        """Also: forced experts lie in at most `topk_group` groups, and any `topk_group` groups that can
        still win (enough unbarred experts to be scored) hold k unbarred experts."""
        super().check_pins(layer, forced, barred)
        if not self._grouped():
            return
        c, where = self.config, f"{self.family} layer {layer}"
        size = self.num_experts // c.n_group
        if len({e // size for e in forced}) > c.topk_group:
            raise ValueError(f"{where}: forced experts span more than topk_group={c.topk_group} expert groups")
        free = sorted(size - sum(e // size == g for e in barred) for g in range(c.n_group))
        eligible = [n for n in free if n >= self.group_scored_by]
        if barred and (len(eligible) < c.topk_group or sum(eligible[: c.topk_group]) < self.top_k):
            raise ValueError(f"{where}: barring {sorted(barred)} can leave the chosen expert groups with fewer "
                             f"than k={self.top_k} experts")

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: Pin, barred: Pin) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        return rules.deepseek_v2(
            logits, self.top_k, method=c.topk_method, n_group=c.n_group, topk_group=c.topk_group,
            scaling=float(c.routed_scaling_factor), forced=forced, barred=barred,
        )


class DeepseekV3Adapter(DeepseekV2Adapter):
    """DeepSeek-V3: sigmoid scores, per-layer `e_score_correction_bias` steering the choice, group top-2-sum
    limited top-k, optional renormalisation, scaled weights."""

    family = "deepseek_v3"
    model_types = ("deepseek_v3",)
    group_scored_by = 2

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: Pin, barred: Pin) -> tuple[torch.Tensor, torch.Tensor]:
        bias = getattr(router, "e_score_correction_bias", None)
        if bias is None:
            raise ValueError("deepseek_v3 route() needs the layer's router (for e_score_correction_bias)")
        c = self.config
        return rules.deepseek_v3(
            logits, self.top_k, correction_bias=bias.to(logits.device), n_group=c.n_group,
            topk_group=c.topk_group, normalize=bool(c.norm_topk_prob), scaling=float(c.routed_scaling_factor),
            forced=forced, barred=barred,
        )


FAMILIES: tuple[type[MoEAdapter], ...] = (
    Qwen2MoeAdapter, Qwen3MoeAdapter, OlmoeAdapter, MixtralAdapter, PhimoeAdapter, GptOssAdapter,
    DeepseekV2Adapter, DeepseekV3Adapter,
)
