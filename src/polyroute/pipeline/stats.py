"""Step `routing_stats`: the statistics store and its CSV tables from a routing store."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from polyroute.routing.store import open_store, write_store
from polyroute.stats.compute import compute_stats, tables, write_tables

log = logging.getLogger(__name__)


def read_scores(path: str | os.PathLike) -> dict[str, float]:
    """Per-language scores from a CSV with columns `language,score` (e.g. Belebele accuracy)."""
    frame = pd.read_csv(path)
    missing = {"language", "score"} - set(frame.columns)
    if missing:
        raise ValueError(f"scores file {path} lacks column(s) {sorted(missing)} (expected language,score)")
    return dict(zip(frame["language"].astype(str), frame["score"].astype(float)))


def routing_stats(routing_path: str | os.PathLike, *, stats_out: str | os.PathLike, tables_out: str | os.PathLike,
                  settings: Mapping[str, Any], reference: str) -> None:
    """Compute every statistic of the routing store and write the stats store and the tables."""
    scores = read_scores(settings["scores"]) if settings.get("scores") else None
    routing = open_store(routing_path)
    stats = compute_stats(
        routing, reference=reference, log_base=settings["log_base"], scores=scores,
        top_m=settings["affinity_top_m"], theta=settings["exclusive_threshold"],
    )
    write_store(stats, stats_out)
    written = write_tables(tables(stats), tables_out)
    log.info("wrote %s and %d tables", stats_out, len(written))
