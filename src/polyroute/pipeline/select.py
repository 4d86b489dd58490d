"""Step `select_experts`: a subnetwork file for one selection method and target language."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from polyroute.routing.store import open_store
from polyroute.models.params import ParamCounts
from polyroute.select import select, write_subnetwork

log = logging.getLogger(__name__)

# Which run-level settings each selector reads besides its own section of selection.methods.
_STATS_KEYS = {
    "chen-exclusive": ("affinity_top_m", "exclusive_threshold"),
    "chen-shared": ("affinity_top_m", "exclusive_threshold"),
    "last-layer": ("language_gap", "shared_top", "high_resource"),
}


def selector_settings(method: str, settings: Mapping[str, Any], stats_settings: Mapping[str, Any],
                      *, reference: str, rise_settings: Mapping[str, Any] | None, train_routers: bool) -> dict[str, Any]:
    """The selector's full settings: its own section plus the run-level ones it depends on."""
    merged = {key: stats_settings[key] for key in _STATS_KEYS.get(method, ())}
    if method == "last-layer":
        merged["reference_language"] = reference
    if method == "random":  # same budget and zone split as rise
        rise = rise_settings or {}
        merged.update({key: rise[key] for key in ("budget", "split") if key in rise})
    merged.update(settings or {})
    if method not in ("full", "none"):
        merged["train_routers"] = train_routers
    return merged


def select_experts(*, method: str, target: str, settings: Mapping[str, Any], routing: str | os.PathLike,
                   model_info: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Run the selector on the routing store and write the subnetwork file atomically."""
    with open(model_info, encoding="utf-8") as handle:
        counts = ParamCounts.from_record(json.load(handle)["params"])
    store = open_store(routing)
    subnetwork = select(method, store, target=target, settings=settings, model_info=counts)
    write_subnetwork(subnetwork, out)
    log.info("%s/%s: %d experts, %d of %d parameters trainable", method, target, len(subnetwork["experts"]),
             subnetwork["params_trainable"], subnetwork["params_total"])
    return subnetwork
