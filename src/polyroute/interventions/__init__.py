"""Routing interventions (METHODS section 7): router-logit edits at inference, for every adapter family.

Public API:
- ``intervene(model, kind, experts, strength=None, scores=None)``: a context manager; kinds ``mask``,
  ``soft``, ``hard``, ``affinity``; on exit the model routes exactly as before.
- ``from_expert_set(model, expert_set, strength=None)``: the same, from an expert-set file of the workflow.
- ``enforce_routing(model, adapter, {layer: experts})``: training-time routing enforcement.
- ``polyroute.interventions.expert_sets``: the expert sets from routing stores (pure xarray, no torch).
- ``polyroute.interventions.experiments``: the config's experiments and their evaluation variants.
The torch parts are imported on first use, so the expert-set step runs without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from polyroute.interventions.kinds import KINDS

_LAZY = {
    "intervene": "polyroute.interventions.context",
    "Intervention": "polyroute.interventions.context",
    "enforce_routing": "polyroute.interventions.enforce",
    "from_expert_set": "polyroute.interventions.context",
    }

__all__ = sorted([*_LAZY, "KINDS"])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'polyroute.interventions' has no attribute {name!r}")
