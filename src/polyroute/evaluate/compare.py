"""Variants against each other: an adapter's gain over the base model and over the random baseline
of equal budget, on its target language and on every other one (the RISE table), with paired
bootstrap intervals over the items both variants answered."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyroute.evaluate.aggregate import interval, statistic
from polyroute.evaluate.tasks import get_task

__all__ = ["load_results", "read_results", "gains", "intervention_changes", "GAIN_COLUMNS", "CHANGE_COLUMNS"]

GAIN_COLUMNS = ["method", "target", "task", "metric", "language", "is_target", "value", "base", "gain",
                "gain_ci_low", "gain_ci_high", "random", "vs_random", "vs_random_ci_low", "vs_random_ci_high",
                "n_items"]


def load_results(dirs: Sequence[str | os.PathLike]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(variant, task, language) -> result record, from evaluation output directories."""
    out = {}
    for directory in map(Path, dirs):
        for file in sorted(directory.glob("*.json")):
            result = json.loads(file.read_text(encoding="utf-8"))
            out[(result["variant"]["name"], result["task"], result["language"])] = result
    return out


def _adapter_of(result: Mapping[str, Any]) -> tuple[str, str] | None:
    """(method, target) of an adapter variant, from the subnetwork file beside its delta."""
    variant = result["variant"]
    if variant["kind"] != "adapter":
        return None
    sub = json.loads((Path(variant["source"]) / "subnetwork.json").read_text(encoding="utf-8"))
    return sub["method"], sub["target"]


def _paired(a: Mapping[str, Any], b: Mapping[str, Any], metric: str, resamples: int, seed: int):
    """Value of a and b on their common items, a - b, and its paired interval."""
    task = get_task(a["task"])
    ids_b = {item["id"]: item for item in b["items"]}
    common = [item for item in a["items"] if item["id"] in ids_b]
    if not common:
        return None
    stat_a = statistic(task, metric, common)
    stat_b = statistic(task, metric, [ids_b[item["id"]] for item in common])
    every = np.arange(len(common))
    low, high = interval(stat_a, len(common), versus=stat_b, resamples=resamples, seed=seed)
    return stat_a(every), stat_b(every), stat_a(every) - stat_b(every), low, high, len(common)


def gains(results: Mapping[tuple[str, str, str], Mapping[str, Any]], *, random_method: str = "random",
          resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per adapter x task x language: its main metric, the base's, the gain and, for methods
    other than the random baseline, the difference to the random adapter of the same target."""
    adapters = {}
    for (variant, _, _), result in results.items():
        if variant not in adapters:
            adapters[variant] = _adapter_of(result)
    random_of = {target: variant for variant, mt in adapters.items() if mt and mt[0] == random_method
                 for target in [mt[1]]}
    rows = []
    for (variant, task_name, language), result in sorted(results.items()):
        if not adapters.get(variant) or (("base", task_name, language) not in results):
            continue
        method, target = adapters[variant]
        metric = get_task(task_name).main_metric
        versus_base = _paired(result, results[("base", task_name, language)], metric, resamples, seed)
        if versus_base is None:
            continue
        value, base, gain, low, high, n = versus_base
        row = {"method": method, "target": target, "task": task_name, "metric": metric, "language": language,
               "is_target": language == target, "value": value, "base": base, "gain": gain,
               "gain_ci_low": low, "gain_ci_high": high, "n_items": n}
        random_variant = random_of.get(target)
        key = (random_variant, task_name, language)
        if method != random_method and key in results:
            versus_random = _paired(result, results[key], metric, resamples, seed)
            if versus_random is not None:
                row.update(random=versus_random[1], vs_random=versus_random[2], vs_random_ci_low=versus_random[3],
                           vs_random_ci_high=versus_random[4])
        rows.append(row)
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


CONSISTENCY = "language_consistency"  # per-item flag of generative tasks (polyroute.evaluate.langid)
CHANGE_COLUMNS = ["variant", "kind", "experiment", "strength", "task", "metric", "language", "value", "base",
                  "change", "change_ci_low", "change_ci_high", "n_items"]


def intervention_changes(results: Mapping[tuple[str, str, str], Mapping[str, Any]], *, resamples: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """One row per steer-/mask- variant x task x language x metric: the main metric (and language
    consistency, where a generative task measured it for both) under the intervention, the base
    model's, and the change with its paired interval (steering gain, masking damage)."""
    rows = []
    for (variant, task_name, language), result in sorted(results.items()):
        info = result["variant"]
        base_result = results.get(("base", task_name, language))
        if info["kind"] not in ("steer", "mask") or base_result is None:
            continue
        metrics = [get_task(task_name).main_metric]
        if CONSISTENCY in result["metrics"] and CONSISTENCY in base_result["metrics"]:
            metrics.append(CONSISTENCY)
        for metric in metrics:
            paired = _paired(result, base_result, metric, resamples, seed)
            if paired is None:
                continue
            value, base, change, low, high, n = paired
            rows.append({"variant": variant, "kind": info["kind"], "experiment": Path(info["source"]).stem,
                         "strength": info.get("strength"), "task": task_name, "metric": metric, "language": language,
                         "value": value, "base": base, "change": change, "change_ci_low": low,
                         "change_ci_high": high, "n_items": n})
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def read_results(dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per (variant, task, language, metric) of the results in evaluation output directories."""
    rows = []
    for result in load_results(dirs).values():
        for metric, value in result["metrics"].items():
            low, high = result["ci95"].get(metric) or (None, None)
            rows.append({"variant": result["variant"]["name"], "task": result["task"], "language": result["language"],
                         "metric": metric, "value": value, "ci_low": low, "ci_high": high,
                         "n_items": result["n_items"]})
    return pd.DataFrame(rows, columns=["variant", "task", "language", "metric", "value", "ci_low", "ci_high",
                                       "n_items"])
