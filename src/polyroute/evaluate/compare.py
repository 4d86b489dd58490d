"""Variants against each other: an adapter's gain over the base model and over the random baselines
of equal budget (plain, and matched on the target's routing share), on its target language and on
every other one (the RISE table), with paired bootstrap intervals over the items both answered."""

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

# column prefix -> the baseline selector an adapter is compared with (same target)
BASELINES = {"random": "random", "matched": "random-matched"}
GAIN_COLUMNS = ["method", "target", "task", "metric", "language", "is_target", "value", "base", "gain",
                "gain_ci_low", "gain_ci_high",
                *[c for p in BASELINES for c in (p, f"vs_{p}", f"vs_{p}_ci_low", f"vs_{p}_ci_high")], "n_items"]


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


def gains(results: Mapping[tuple[str, str, str], Mapping[str, Any]], *,
          baselines: Mapping[str, str] = BASELINES, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per adapter x task x language: its main metric, the base's, the gain and, for each
    baseline (column prefix -> method) other than the adapter's own method, the difference to that
    baseline's adapter of the same target (NaN where it was not trained)."""
    adapters = {}
    for (variant, _, _), result in results.items():
        if variant not in adapters:
            adapters[variant] = _adapter_of(result)
    variant_of = {mt: variant for variant, mt in adapters.items() if mt}
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
        for prefix, baseline in baselines.items():
            key = (variant_of.get((baseline, target)), task_name, language)
            if method == baseline or key not in results:
                continue
            versus = _paired(result, results[key], metric, resamples, seed)
            if versus is not None:
                row.update({prefix: versus[1], f"vs_{prefix}": versus[2], f"vs_{prefix}_ci_low": versus[3],
                            f"vs_{prefix}_ci_high": versus[4]})
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
