"""The adapter contract: where one architecture family keeps its routers and experts, and how it routes.

An adapter is built from a config alone (no weights), so the workflow can validate settings against it
before any job; the methods that take a model find the modules in that model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from polyroute.models.info import ModelInfo
from polyroute.models.params import param_counts_from_config


@dataclass
class MoEAdapter:
    """Base adapter. A family subclass sets the class variables and `_route`, and overrides
    `moe_layer_indices` when not every layer is MoE."""

    config: Any  # the transformers PretrainedConfig the adapter was built from
    moe_layers: list[int] = field(init=False)
    num_experts: int = field(init=False)
    top_k: int = field(init=False)

    family: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()
    router_attr: ClassVar[str] = "gate"  # name of the router inside the layer's `mlp`
    router_output_kind: ClassVar[str] = "logits"
    expert_param_names: ClassVar[tuple[str, ...]] = ("gate_up_proj", "down_proj")

    def __post_init__(self) -> None:
        self.num_experts = self._num_experts(self.config)
        self.top_k = int(self.config.num_experts_per_tok)
        self.moe_layers = self.moe_layer_indices(self.config)
        if not self.moe_layers:
            raise ValueError(f"model_type {self.config.model_type!r}: the config has no MoE layers")
        if not 0 < self.top_k <= self.num_experts:
            raise ValueError(f"num_experts_per_tok={self.top_k} must lie in 1..num_experts={self.num_experts}")

    @staticmethod
    def _num_experts(config: Any) -> int:
        # families name it differently; transformers' attribute_map aliases only some of them
        for name in ("num_experts", "num_local_experts", "n_routed_experts"):
            value = getattr(config, name, None)
            if value is not None:
                return int(value)
        raise ValueError(f"model_type {config.model_type!r}: the config names no expert count")

    @classmethod
    def moe_layer_indices(cls, config: Any) -> list[int]:
        """Layer indices with a MoE MLP (default: every layer)."""
        return list(range(config.num_hidden_layers))

    def info(self, model: str = "", revision: str | None = None) -> ModelInfo:
        """The config-only record: parameter sizes from the config, routing facts from this adapter."""
        counts = param_counts_from_config(self.config.to_dict(), model=model)
        if list(counts.moe_layers) != self.moe_layers or counts.num_experts != self.num_experts:
            raise ValueError(f"{self.family}: parameter counting and the adapter disagree on the MoE layout "
                             f"({list(counts.moe_layers)} x {counts.num_experts} vs {self.moe_layers} x {self.num_experts})")
        return dataclasses.replace(counts, revision=revision, family=self.family, top_k=self.top_k,
                                   num_hidden_layers=int(self.config.num_hidden_layers),
                                   router_output_kind=self.router_output_kind)

    # --- modules -------------------------------------------------------------------------------
    def _check_layer(self, layer: int) -> None:
        if layer not in self.moe_layers:
            raise ValueError(f"layer {layer} is not a MoE layer of this {self.family} model (MoE layers: {self.moe_layers})")

    @staticmethod
    def decoder_layers(model: nn.Module) -> nn.ModuleList:
        """The decoder layer list of a causal-LM or base model."""
        base = getattr(model, "model", model)
        layers = getattr(base, "layers", None)
        if not isinstance(layers, nn.ModuleList):
            raise ValueError(f"{type(model).__name__} has no `model.layers` ModuleList")
        return layers

    def moe_block(self, model: nn.Module, layer: int) -> nn.Module:
        """The layer's MoE MLP block."""
        self._check_layer(layer)
        return self.decoder_layers(model)[layer].mlp

    def router(self, model: nn.Module, layer: int) -> nn.Module:
        """The router module of a MoE layer (its forward returns logits, weights, indices in transformers 5)."""
        return getattr(self.moe_block(model, layer), self.router_attr)

    def experts(self, model: nn.Module, layer: int) -> nn.Module:
        """The module holding the fused [E, ...] expert tensors."""
        return self.moe_block(model, layer).experts

    def expert_parameters(self, model: nn.Module, layer: int) -> dict[str, nn.Parameter]:
        """The fused expert tensors of a layer, each with the expert as first dim [E, ...]."""
        experts = self.experts(model, layer)
        params = {name: getattr(experts, name) for name in self.expert_param_names}
        for name, p in params.items():
            if p.shape[0] != self.num_experts:
                raise ValueError(f"{self.family} layer {layer} {name} has shape {tuple(p.shape)}, expected [E={self.num_experts}, ...]")
        return params

    def router_parameters(self, model: nn.Module, layer: int) -> dict[str, nn.Parameter]:
        """The router's trainable parameters (weight, plus bias where the family has one)."""
        return dict(self.router(model, layer).named_parameters())

    def model_moe_layers(self, model: nn.Module) -> list[int]:
        """MoE layers found in an instantiated model (a layer whose mlp has the router attribute)."""
        return [i for i, lay in enumerate(self.decoder_layers(model)) if hasattr(lay.mlp, self.router_attr)]

    # --- routing rule --------------------------------------------------------------------------
    def route(self, logits: torch.Tensor, router: nn.Module | None = None, *, forced: torch.Tensor | None = None,
              barred: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The family's own rule: logits [N, E] -> (weights [N, k] float32, indices [N, k]).

        `router` supplies per-layer state some families need (DeepSeek-V3's correction bias). `forced` /
        `barred` (bool, broadcastable to [N, E]) pin experts into / out of the choice (models.rules)."""
        if logits.shape[-1] != self.num_experts:
            raise ValueError(f"logits have {logits.shape[-1]} experts, the {self.family} config says {self.num_experts}")
        return self._route(logits.reshape(-1, self.num_experts), router, forced, barred)

    def _route(self, logits: torch.Tensor, router: nn.Module | None, forced: torch.Tensor | None,
               barred: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def check_pins(self, layer: int, forced: set[int], barred: set[int]) -> None:
        """One-line ValueError unless the rule can honour the pins of one layer for every token: at most k
        forced experts, at least k experts left unbarred (families with expert groups add their limits)."""
        where = f"{self.family} layer {layer}"
        if forced & barred:
            raise ValueError(f"{where}: experts {sorted(forced & barred)} are both forced and barred")
        if len(forced) > self.top_k:
            raise ValueError(f"{where}: {len(forced)} experts forced into the top-k, but the model routes only k={self.top_k}")
        if self.num_experts - len(barred) < self.top_k:
            raise ValueError(f"{where}: {len(barred)} of {self.num_experts} experts barred leaves fewer than k={self.top_k}")
