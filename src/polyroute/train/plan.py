"""Turn a subnetwork file (DESIGN.md "Subnetwork file") into the tensors and rows to train."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping

import torch
from torch import nn


def experts_by_layer(subnetwork: Mapping[str, Any]) -> dict[int, list[int]]:
    """Parse ``subnetwork["experts"]`` ([[layer, expert], ...]) into layer -> sorted experts.

    Raises ValueError on a malformed entry or a duplicate pair (a duplicate means a broken selector).
    """
    if "experts" not in subnetwork:
        raise ValueError("subnetwork: missing key 'experts'")
    raw = subnetwork["experts"]
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"subnetwork: 'experts' must be a list of [layer, expert], got {type(raw).__name__}")
    out: dict[int, set[int]] = defaultdict(set)
    for i, pair in enumerate(raw):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
            raise ValueError(f"subnetwork: experts[{i}]={pair!r} is not an integer [layer, expert] pair")
        layer, expert = pair
        if expert in out[layer]:
            raise ValueError(f"subnetwork: experts[{i}]={list(pair)} is listed twice")
        out[layer].add(expert)
    return {layer: sorted(es) for layer, es in sorted(out.items())}


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def build_plan(model: nn.Module, adapter: Any, subnetwork: Mapping[str, Any]) -> dict[str, torch.Tensor | None]:
    """Parameter name -> rows to train (None = the whole tensor), validated against the model.

    Experts: rows of each fused [E, ...] tensor of the adapter's ``expert_parameters`` for their
    layer. ``train_routers``: the routers of the layers that have selected experts (whole tensors).
    ``extra_modules``: module or parameter names trained whole; ``"*"`` means every parameter.
    """
    names = _param_names(model)
    by_layer = experts_by_layer(subnetwork)
    plan: dict[str, torch.Tensor | None] = {}
    moe_layers = list(adapter.moe_layers)
    for layer, experts in by_layer.items():
        if layer not in moe_layers:
            raise ValueError(f"subnetwork: layer {layer} is not a MoE layer of this model (MoE layers: {moe_layers})")
        bad = [e for e in experts if not 0 <= e < adapter.num_experts]
        if bad:
            raise ValueError(f"subnetwork: expert(s) {bad} of layer {layer} outside 0..{adapter.num_experts - 1}")
        for pname, p in adapter.expert_parameters(model, layer).items():
            if p.shape[0] != adapter.num_experts:
                raise ValueError(f"layer {layer} {pname}: shape {tuple(p.shape)} has no leading expert dim")
            plan[names[id(p)]] = torch.tensor(experts, dtype=torch.long)
    train_routers = subnetwork.get("train_routers", False)
    if not isinstance(train_routers, bool):
        raise ValueError(f"subnetwork: train_routers must be true or false, got {train_routers!r}")
    if train_routers:
        for layer in by_layer:
            for p in adapter.router_parameters(model, layer).values():
                plan[names[id(p)]] = None
    extra = subnetwork.get("extra_modules", []) or []
    if not isinstance(extra, (list, tuple)) or not all(isinstance(m, str) for m in extra):
        raise ValueError(f"subnetwork: extra_modules must be a list of module names, got {extra!r}")
    all_names = list(names.values())
    for module in extra:
        hits = [n for n in all_names if module == "*" or n == module or n.startswith(module + ".")]
        if not hits:
            raise ValueError(f"subnetwork: extra_modules entry {module!r} matches no parameter of the model")
        for n in hits:
            plan[n] = None  # a whole-tensor delta supersedes row deltas on the same tensor
    if not plan:
        raise ValueError("subnetwork: nothing to train (no experts, no routers, no extra_modules)")
    return plan
