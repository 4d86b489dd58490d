"""Step `select_experts`: a subnetwork file for one selection method and target language."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from polyroute.routing.store import open_store
from polyroute.models.info import read_model_info
from polyroute.select import REGISTRY, select, write_subnetwork

log = logging.getLogger(__name__)

def selector_settings(method: str, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The selector's settings from the validated config: its own section of selection.methods plus
    the run-level ones its registry spec reads (stats keys, the reference language, train_routers,
    settings borrowed from another method's section). No defaults here: the schema filled them in."""
    spec = REGISTRY[method]
    methods = run_config["selection"]["methods"]
    run_level = {**{key: run_config["stats"][key] for key in spec.stats_keys},
                 "reference_language": run_config["reference_language"],
                 "train_routers": run_config["training"]["train_routers"]}
    merged = {}
    for key in spec.settings:
        if key in spec.borrows:
            source = methods.get(spec.borrows[key]) or {}
        elif key in spec.own_keys:
            source = methods[method]
        else:
            source = run_level
        if key in source:
            merged[key] = source[key]
    return merged


def select_experts(*, method: str, target: str, settings: Mapping[str, Any], routing: str | os.PathLike,
                   model_info: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Run the selector on the routing store and write the subnetwork file atomically."""
    counts = read_model_info(model_info)
    store = open_store(routing)
    subnetwork = select(method, store, target=target, settings=settings, model_info=counts)
    write_subnetwork(subnetwork, out)
    log.info("%s/%s: %d experts, %d of %d parameters trainable", method, target, len(subnetwork["experts"]),
             subnetwork["params_trainable"], subnetwork["params_total"])
    return subnetwork
