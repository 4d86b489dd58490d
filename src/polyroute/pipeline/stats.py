"""Step `routing_stats`: the statistics store and its CSV tables from a routing store."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd
import xarray as xr

from polyroute.errors import UserError
from polyroute.routing.store import open_store, write_store
from polyroute.stats.compute import compute_stats, tables, write_tables

log = logging.getLogger(__name__)


def read_scores(path: str | os.PathLike) -> dict[str, float]:
    """Per-language scores from a CSV with columns `language,score` (e.g. Belebele accuracy)."""
    frame = pd.read_csv(path)
    missing = {"language", "score"} - set(frame.columns)
    if missing:
        raise UserError(f"scores file {path} lacks column(s) {sorted(missing)} (expected language,score)")
    return dict(zip(frame["language"].astype(str), frame["score"].astype(float)))


def configured_stats(routing: xr.Dataset, settings: Mapping[str, Any], reference: str,
                     scores: Mapping[str, float] | None = None) -> xr.Dataset:
    """`compute_stats` with the config's `stats` block (log base, distributions, affinity thresholds)."""
    return compute_stats(
        routing, reference=reference, log_base=settings["log_base"], source=settings["distribution"],
        divergence_source=settings["divergence_input"], scores=scores,
        top_m=settings["affinity_top_m"], theta=settings["exclusive_threshold"],
    )


def routing_stats(routing_path: str | os.PathLike, *, stats_out: str | os.PathLike, tables_out: str | os.PathLike,
                  settings: Mapping[str, Any], reference: str) -> None:
    """Compute every statistic of the routing store and write the stats store and the tables."""
    scores = read_scores(settings["scores"]) if settings.get("scores") else None
    stats = configured_stats(open_store(routing_path), settings, reference, scores)
    write_store(stats, stats_out)
    written = write_tables(tables(stats), tables_out)
    log.info("wrote %s and %d tables", stats_out, len(written))


def routing_figures(stats_path: str | os.PathLike, *, expected: Mapping[str, str], target: str,
                    high_resource: list[str], heatmap_layers: list[int] | None) -> None:
    """Draw every figure into the folder of `expected` (name -> PNG path) and check each was drawn."""
    from pathlib import Path

    from polyroute.plots import plot_all

    out_dir = Path(next(iter(expected.values()))).parent
    written = plot_all(open_store(stats_path), out_dir, target=target, high_resource=high_resource,
                       similarity_layers=heatmap_layers)
    missing = sorted(set(expected) - set(written))
    if missing:
        raise UserError(f"the statistics lack the data for figure(s) {missing}")
    log.info("drew %d figures into %s", len(written), out_dir)
