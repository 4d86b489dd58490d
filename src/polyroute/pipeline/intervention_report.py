"""Step `intervention_report`: the report's view of the routing interventions, from the evaluations of
the steer-/mask- variants and of the base model, the expert sets and the routing under each experiment.

Writes summary/interventions.csv (each variant's change vs base per task, language and metric, with
paired intervals: `polyroute.evaluate.compare.intervention_changes`), summary/steering.csv (per steering sweep and strength: the mean change over languages with its
interval, and the sweep's collapse point, `polyroute.evaluate.sweep`), summary/routing_shift.csv (per
intervention, language and layer: `polyroute.stats.shift.routing_shift` against the base routing on the
same sequences) and three figures: the sweep, the masking damage, the routing shift. No torch.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from polyroute.atomic import atomic_write_text
from polyroute.evaluate.compare import CONSISTENCY, intervention_changes, load_results
from polyroute.evaluate.sweep import collapse_point, sweep_means
from polyroute.evaluate.tasks import get_task
from polyroute.plots.interventions import plot_masking, plot_routing_shift, plot_sweep
from polyroute.routing.store import open_store
from polyroute.stats.shift import routing_shift, shift_table

log = logging.getLogger(__name__)


def steering_table(changes: pd.DataFrame) -> pd.DataFrame:
    """`sweep_means` of the changes with each sweep's `collapse_point` (NaN: none within the sweep)."""
    sweep = sweep_means(changes)
    points = {}
    for (experiment, task, metric), rows in sweep.groupby(["experiment", "task", "metric"]):
        better_up = metric == CONSISTENCY or get_task(task).higher_is_better
        points[(experiment, task, metric)] = collapse_point(rows, higher_is_better=better_up)
    keys = zip(sweep["experiment"], sweep["task"], sweep["metric"])
    return sweep.assign(collapse_point=[points[key] for key in keys])


def _window_label(record: dict) -> str:
    """'<name> (<window>: layers [...])', the window named only when it chose the layers."""
    settings = record["settings"]
    named = settings.get("layers") is None and isinstance(settings.get("window"), str)
    return f"{record['name']} ({settings['window'] + ': ' if named else ''}layers {record['layers']})"


def intervention_report(*, eval_dirs: Sequence[str | os.PathLike], routing: str | os.PathLike,
                        expert_sets: Sequence[str | os.PathLike], shift_stores: Sequence[str | os.PathLike],
                        changes_out: str | os.PathLike, steering_out: str | os.PathLike,
                        shift_out: str | os.PathLike, sweep_figure: str | os.PathLike,
                        masking_figure: str | os.PathLike, shift_figure: str | os.PathLike,
                        bootstrap: int = 1000, seed: int = 0) -> None:
    """Write the changes, steering and routing-shift tables and the three figures (see the module
    docstring). A shift store is paired with the expert set of the same name (`<name>.zarr`, `<name>.json`)."""
    table = intervention_changes(load_results(eval_dirs), resamples=bootstrap, seed=seed)
    records = {Path(path).stem: json.loads(Path(path).read_text(encoding="utf-8")) for path in expert_sets}
    steering = steering_table(table)
    main = steering[steering["metric"] != CONSISTENCY]  # the sweep figure shows each task's main metric
    collapse = {(e, t): (None if pd.isna(p) else float(p))
                for e, t, p in zip(main["experiment"], main["task"], main["collapse_point"])}
    plot_sweep(table[table["metric"] != CONSISTENCY], main, collapse, sweep_figure)
    masks = dict(sorted(((n, r) for n, r in records.items() if r["kind"] == "mask"), key=lambda nr: min(nr[1]["layers"])))
    plot_masking(table, masking_figure, labels={n: _window_label(r) for n, r in masks.items()},
                 masked={n: r["language"] for n, r in masks.items()})
    base = open_store(routing)
    shifts = {Path(path).stem: routing_shift(base, open_store(path), records[Path(path).stem]["experts"])
              for path in shift_stores}
    shift = shift_table(shifts)
    plot_routing_shift(shift, shift_figure)
    atomic_write_text(changes_out, table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(steering_out, steering.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(shift_out, shift.to_csv(index=False, float_format="%.6g"))
    log.info("%d steering sweep rows, %d routing shift rows", len(steering), len(shift))
