"""Steps `intervention_experts` (an experiment's expert set from routing stores, as JSON) and
`intervention_routing` (the routing dataset routed again under the experiment: the routing shift).

Expert-set file (`results/<run>/interventions/<name>.json`):
`{"name", "kind", "variant_prefix", "recipe", "language", "experts": [[layer, expert], ...],
"scores": [...], "score", "strengths", "languages", "layers", "model", "num_experts", "top_k",
"settings": {...}, "created"}`; `scores` are what ranked the experts (Delta or W), and the `s` of
`affinity`. `polyroute.interventions.from_expert_set(model, path, strength)` turns it into an intervention.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from polyroute.atomic import atomic_write_json, utc_now
from polyroute.errors import UserError
from polyroute.interventions import expert_sets
from polyroute.interventions.experiments import Experiment
from polyroute.interventions.kinds import VARIANT_PREFIX
from polyroute.routing.store import open_store
from polyroute.models.info import read_model_info

log = logging.getLogger(__name__)


def experiment_settings(exp: Experiment, stats: Mapping[str, Any]) -> dict[str, Any]:
    """Everything an experiment's expert set depends on (a rule's params: only its change reruns it)."""
    out = dataclasses.asdict(exp)
    if exp.experts == "chen-exclusive":  # chen-shared carries its own top_m (Chen's steering: 20)
        out["affinity_top_m"] = stats["affinity_top_m"]
        theta = exp.settings["theta"]
        out["exclusive_threshold"] = stats["exclusive_threshold"] if theta is None else theta
    return out


def _recipe(settings: Mapping[str, Any], routing, task_routing, layers: list[int]):
    """(mask, scores, score name) of the experiment's store-based recipe."""
    recipe, language, extra = settings["experts"], settings["language"], settings["settings"]
    if recipe == "bandarkar-task":
        mask, scores = expert_sets.task_experts(task_routing, routing, layers, language, extra["tau"])
        return mask, scores, "delta"
    if recipe == "chen-shared":
        mask, scores = expert_sets.shared_source_experts(routing, language, layers, extra["top_m"], extra["low"],
                                                         extra["high"], extra["sources"])
        return mask, scores, "affinity"
    if recipe == "chen-exclusive":
        mask, scores = expert_sets.exclusive_experts(routing, language, layers, settings["affinity_top_m"],
                                                     settings["exclusive_threshold"])
        return mask, scores, "affinity"
    raise UserError(f"recipe {recipe!r} has no store-based expert set")


def build_expert_set(*, settings: Mapping[str, Any], routing: str | os.PathLike, model_info: str | os.PathLike,
                     out: str | os.PathLike, task_routing: str | os.PathLike | None = None) -> dict[str, Any]:
    """The experiment's experts from the routing store(s), written to `out` (JSON, atomically).

    `hard` keeps at most k experts per layer and `mask` at most E - k (the highest-scoring ones), so
    that the top-k can honour every pin."""
    info = read_model_info(model_info)
    moe, E, k = list(info.moe_layers), int(info.num_experts), int(info.top_k)
    layers = list(settings["layers"]) if settings["layers"] is not None else expert_sets.window_layers(settings["window"], moe)
    cap = {"hard": k, "mask": E - k}.get(settings["kind"])
    if settings["experts"] == "list":
        extra = settings["settings"]
        experts = [list(p) for p in extra["list"]]
        scores, score_name = extra.get("scores"), "given"
        layers = sorted({layer for layer, _ in experts})
    else:
        store = open_store(routing)
        task = open_store(task_routing) if task_routing is not None else None
        mask, score_da, score_name = _recipe(settings, store, task, layers)
        experts, scores = expert_sets.expert_list(mask, score_da, cap)
    record = {
        "name": settings["name"], "kind": settings["kind"], "variant_prefix": VARIANT_PREFIX[settings["kind"]],
        "recipe": settings["experts"], "language": settings["language"], "experts": experts, "scores": scores,
        "score": score_name, "strengths": list(settings["strengths"]), "languages": list(settings["languages"]),
        "layers": layers, "model": info.model, "num_experts": E, "top_k": k,
        "settings": {key: value for key, value in settings.items() if key not in ("name", "kind", "strengths", "languages")}
        | {"max_per_layer": cap, "routing": str(routing), "task_routing": None if task_routing is None else str(task_routing)},
        "created": utc_now(),
    }
    if not experts:
        log.warning("%s: the recipe selects no experts in layers %s; the intervention changes nothing",
                    settings["name"], layers)
    atomic_write_json(out, record)
    log.info("%s: %s on %d experts in layers %s", settings["name"], settings["kind"], len(experts), layers)
    return record


def extract_routing_under(*, expert_set: str | os.PathLike, data_files: Sequence[str | os.PathLike], dataset: str,
                          split: str | None, languages: Sequence[str], model: Mapping[str, Any],
                          extraction: Mapping[str, Any], per_language: int, out: str | os.PathLike,
                          run_config: Mapping[str, Any], device: str = "auto") -> None:
    """Route the first `per_language` sequences of each language with the expert set's intervention
    active (at its first strength): one store, read like the routing store, showing the routing shift."""
    from polyroute.interventions import from_expert_set
    from polyroute.pipeline.routing import extract_routing

    with open(expert_set, encoding="utf-8") as handle:
        record = json.load(handle)
    strength = record["strengths"][0]
    extract_routing(
        data_files=data_files, dataset=dataset, split=split, languages=languages, model=model,
        extraction=extraction, shard=0, shards=1, out=out, run_config=run_config, device=device,
        per_language=per_language,
        edit_routing=lambda net, adapter: from_expert_set(net, record, strength, adapter=adapter),
        attrs={"intervention": record["name"], "intervention_kind": record["kind"],
               "intervention_strength": strength, "intervention_experts": len(record["experts"])},
    )
