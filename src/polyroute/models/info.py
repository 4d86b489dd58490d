"""The one model-info record: what the workflow knows about a model from its config alone (no weights).

The `model_info` step writes it as ``results/<run>/model/info.json`` (`to_record`); every later step
and the workflow's parse-time checks read it back (`read_model_info`). Selection needs only the layout
and parameter sizes, so the routing facts (top-k, family, router output) are optional. No torch.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelInfo:
    """A model's MoE layout and parameter sizes (from `polyroute.models.params`), with the routing facts
    its adapter adds (`polyroute.models.MoEAdapter.info`)."""

    moe_layers: tuple[int, ...]  # model layer index of each MoE layer, increasing
    num_experts: int  # routed experts per MoE layer (E)
    expert_params: int  # parameters of one routed expert
    router_params: int  # parameters of one MoE layer's router
    total_params: int  # every parameter of the model (tied embeddings once)
    model: str = ""  # hub id or local directory
    revision: str | None = None
    model_type: str = ""
    family: str = ""  # the adapter family
    top_k: int | None = None  # experts per token (k)
    num_hidden_layers: int | None = None
    router_output_kind: str | None = None  # "logits", "scores" (post-top-k) or "auto" (detect from the data)

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
    def from_record(cls, record: Mapping[str, Any]) -> ModelInfo:
        """Build from a mapping holding these fields (e.g. a model-info JSON); other keys are ignored."""
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
        missing = [n for n in required if n not in record]
        if missing:
            raise ValueError(f"model info lacks {missing}")
        return cls(**{f.name: record[f.name] for f in dataclasses.fields(cls) if f.name in record})

    def to_record(self) -> dict[str, Any]:
        """JSON-ready fields, the inverse of from_record."""
        return {**asdict(self), "moe_layers": list(self.moe_layers)}

    @property
    def total_experts(self) -> int:
        return len(self.moe_layers) * self.num_experts

    def trainable(self, n_experts: int, n_router_layers: int = 0) -> int:
        """Parameters made trainable by `n_experts` routed experts and the routers of `n_router_layers` layers."""
        return int(n_experts) * self.expert_params + int(n_router_layers) * self.router_params


def read_model_info(path: str | os.PathLike) -> ModelInfo:
    """The record the `model_info` step wrote."""
    with open(path, encoding="utf-8") as handle:
        return ModelInfo.from_record(json.load(handle))
