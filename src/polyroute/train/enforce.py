"""Routing enforcement during training (Khandelwal): chosen layers route only to chosen experts."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


def enforce_routing(model: nn.Module, adapter: Any, allowed: dict[int, list[int]]) -> list[RemovableHandle]:
    """Restrict the top-k of each layer in ``allowed`` to those experts, by the family's own rule.

    A forward hook on the router masks the other experts' logits to -inf and recomputes
    (weights, indices) with ``adapter.route``; the raw logits are returned unchanged. Remove the
    returned handles to stop. Registered with ``prepend=True`` so capture hooks see the edited routing.
    """
    handles = []
    for layer, experts in allowed.items():
        if not experts:
            raise ValueError(f"enforce_routing: layer {layer} has no allowed experts")
        router = adapter.router(model, layer)
        mask = torch.ones(adapter.num_experts, dtype=torch.bool)
        mask[torch.as_tensor(experts, dtype=torch.long)] = False  # True = forbidden

        def hook(module: nn.Module, args: tuple, output: Any, mask: torch.Tensor = mask) -> Any:
            if not (isinstance(output, tuple) and len(output) == 3):
                raise TypeError(f"enforce_routing: router {type(module).__name__} does not return (logits, weights, indices)")
            logits, weights, _ = output
            masked = logits.masked_fill(mask.to(logits.device), float("-inf"))
            new_w, new_i = adapter.route(masked, module)
            return logits, new_w.to(weights.dtype).reshape(weights.shape), new_i.reshape(weights.shape)

        handles.append(router.register_forward_hook(hook, prepend=True))
    return handles
