"""Routing enforcement during training (Khandelwal): chosen layers route only to chosen experts.

A mask intervention on every other expert of those layers. Unlike `intervene(kind="mask")` it allows
fewer than k allowed experts in a layer: the rule then fills the top-k with barred experts of weight 0.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from polyroute.interventions.context import Intervention
from polyroute.interventions.edits import LayerEdit


def enforce_routing(model: nn.Module, adapter: Any, allowed: dict[int, list[int]]) -> Intervention:
    """An intervention restricting the top-k of each layer in ``allowed`` to those experts, by the
    family's own rule; ``start()`` it for a whole run or use it as a context manager."""
    edits = {}
    for layer, experts in allowed.items():
        if not experts:
            raise ValueError(f"enforce_routing: layer {layer} has no allowed experts")
        adapter.router(model, layer)  # a layer that is not MoE fails here, before anything changes
        forbidden = sorted(set(range(adapter.num_experts)) - {int(e) for e in experts})
        edits[layer] = LayerEdit.of("mask", forbidden, [0.0] * len(forbidden), adapter.num_experts)
    return Intervention(model, adapter, edits, description=f"enforce routing on layers {sorted(allowed)}")
