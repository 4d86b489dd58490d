"""Step `noise_floor`: the model's routing statistics beside those of the same architecture untrained.

Reads the run's statistics store and the routing stores of the untrained models (rule
`untrained_routing`, one per initialisation seed, on the same sequences), computes the untrained
models' statistics with the same settings and writes summary/noise_floor.csv
(`polyroute.stats.noise_floor.noise_floor_table`) and its figure. No torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from polyroute.atomic import atomic_write_text
from polyroute.errors import UserError
from polyroute.pipeline.stats import configured_stats
from polyroute.plots.noise_floor import plot_noise_floor
from polyroute.routing.store import open_store
from polyroute.stats.noise_floor import noise_floor_table

log = logging.getLogger(__name__)

# store attributes that must agree for the statistics to be comparable
_SAME = ("model", "dataset", "split", "num_experts", "top_k")


def noise_floor(*, stats: str | os.PathLike, untrained: Sequence[str | os.PathLike], settings: Mapping[str, Any],
                reference: str, targets: Sequence[str], table_out: str | os.PathLike,
                figure_out: str | os.PathLike) -> None:
    """Write the noise-floor table and figure from the statistics store and the untrained routing stores."""
    model = open_store(stats)
    floors = []
    for path in untrained:
        routing = open_store(path)
        differ = [k for k in _SAME if k in model.attrs and str(routing.attrs.get(k)) != str(model.attrs[k])]
        if differ:
            raise UserError(f"{path}: {differ[0]} is {routing.attrs.get(differ[0])!r}, the statistics' is "
                             f"{model.attrs[differ[0]]!r}: not the same model or text")
        floors.append(configured_stats(routing, settings, reference))
        log.info("untrained statistics of %s (seed %s)", path, routing.attrs.get("untrained_seed"))
    table = noise_floor_table(model, floors, reference=reference, targets=targets)
    plot_noise_floor(table, figure_out)
    atomic_write_text(table_out, table.to_csv(index=False, float_format="%.6g"))
    log.info("noise floor over %d seeds: %d rows", len(floors), len(table))
