"""Step `summarize`: the run's key numbers as small CSV tables (one row per language, layer,
subnetwork), the numbers a paper's tables are made of."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from polyroute.atomic import atomic_write_text
from polyroute.errors import UserError
from polyroute.evaluate.compare import gains, load_results, read_results
from polyroute.routing.store import open_store
from polyroute.stats.zones import rise_zones

log = logging.getLogger(__name__)
EXCLUSIVE, SHARED = 2, 1


def _middle(stats: xr.Dataset) -> xr.Dataset:
    positions = next(zone.positions for zone in rise_zones(stats.sizes["layer"]) if zone.name == "middle")
    return stats.isel(layer=list(positions) or slice(None))


def by_language(stats: xr.Dataset) -> pd.DataFrame:
    """Per language: tokens, mean normalised entropy, middle-layer divergence from the reference
    (pooled and over parallel sequences), consistency, exclusive experts, and the score if given."""
    middle = _middle(stats)
    columns = {
        "tokens": stats["tokens"],
        "entropy_normalised_mean": stats["entropy_normalised"].mean("layer"),
        "divergence_middle": middle["divergence"].mean("layer"),
        "exclusive_experts": (stats["expert_class"] == EXCLUSIVE).sum(("layer", "expert")),
    }
    for name, variable in (("divergence_parallel_middle", "divergence_parallel"), ("consistency_mean", "consistency")):
        if variable in stats and np.isfinite(stats[variable].values).any():
            columns[name] = (middle if variable.startswith("divergence") else stats)[variable].mean("layer")
    if "score" in stats:
        columns["score"] = stats["score"]
    return pd.DataFrame({name: value.to_series() for name, value in columns.items()}).reset_index()


def by_layer(stats: xr.Dataset) -> pd.DataFrame:
    """Per MoE layer: specialisation, median divergence over languages, experts exclusive to some
    language and experts shared by some language, and the RISE zone."""
    reference = stats.attrs.get("reference_language")
    others = [g for g in stats["language"].values if g != reference]
    zone_of = {p: zone.name for zone in rise_zones(stats.sizes["layer"]) for p in zone.positions}
    frame = pd.DataFrame({
        "layer": stats["layer"].values,
        "zone": [zone_of[p] for p in range(stats.sizes["layer"])],
        "specialisation": stats["specialisation"].values,
        "divergence_median": stats["divergence"].sel(language=others).median("language").values,
        "experts_exclusive": (stats["expert_class"] == EXCLUSIVE).any("language").sum("expert").values,
        "experts_shared": (stats["expert_class"] == SHARED).any("language").sum("expert").values,
    })
    return frame


def selections(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    rows = []
    for path in paths:
        sub = json.loads(Path(path).read_text(encoding="utf-8"))
        rows.append({
            "method": sub["method"], "target": sub["target"], "experts": len(sub["experts"]),
            "train_routers": sub["train_routers"], "params_trainable": sub["params_trainable"],
            "params_total": sub["params_total"],
            "percent_trainable": 100.0 * sub["params_trainable"] / sub["params_total"],
        })
    return pd.DataFrame(rows)


def trainings(adapter_dirs: Sequence[str | os.PathLike]) -> pd.DataFrame:
    rows = []
    for directory in adapter_dirs:
        sub = json.loads((Path(directory) / "subnetwork.json").read_text(encoding="utf-8"))
        curve = pd.read_csv(Path(directory) / "train_log.csv")
        rows.append({"method": sub["method"], "target": sub["target"], "steps": int(curve["step"].max()),
                     "loss_first": float(curve["loss"].iloc[0]), "loss_last": float(curve["loss"].iloc[-1])})
    return pd.DataFrame(rows, columns=["method", "target", "steps", "loss_first", "loss_last"])


def summarize(stats_path: str | os.PathLike, *, selection_files: Sequence[str | os.PathLike],
              adapter_dirs: Sequence[str | os.PathLike], outputs: Mapping[str, str | os.PathLike],
              eval_dirs: Sequence[str | os.PathLike] = (), gains_figure: str | os.PathLike | None = None,
              bootstrap: int = 1000, seed: int = 0) -> None:
    """Write the summary tables named in `outputs` (language, layer, selection, training, and with
    evaluation results: evaluation, every metric of every variant, and gains, the RISE table)."""
    stats = open_store(stats_path)
    frames = {"language": by_language(stats), "layer": by_layer(stats),
              "selection": selections(selection_files), "training": trainings(adapter_dirs)}
    if eval_dirs:

        results = load_results(eval_dirs)
        frames["evaluation"] = read_results(eval_dirs)
        frames["gains"] = gains(results, resamples=bootstrap, seed=seed)
        if gains_figure is not None:
            from polyroute.plots.evaluation import plot_gains

            plot_gains(frames["gains"], gains_figure)
    for name, path in outputs.items():
        atomic_write_text(path, frames[name].to_csv(index=False, float_format="%.6g"))
    log.info("wrote %d summary tables", len(outputs))


def write_scores(result_dir: str | os.PathLike, *, metric: str, out: str | os.PathLike) -> pd.DataFrame:
    """Per-language `metric` of one task's results as a ``language,score`` CSV (the stats.scores input)."""
    table = read_results([result_dir])
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise UserError(f"{result_dir}: no metric {metric!r} (has {', '.join(sorted(set(table['metric'])))})")
    scores = rows[["language", "value"]].rename(columns={"value": "score"})
    atomic_write_text(out, scores.to_csv(index=False, float_format="%.6g"))
    return scores
