"""Step `compare`: the statistics of every member of a comparison side by side (store, tables, figures).

Members are statistics stores (`polyroute.revisions.Member` records); with the noise floor, the run's
untrained routing stores join as members of kind "untrained" (training step 0), their statistics
computed with the run's settings as rule `noise_floor` does. No torch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from polyroute.pipeline.stats import configured_stats
from polyroute.plots.compare import plot_comparison
from polyroute.routing.store import open_store, write_store
from polyroute.stats.compare import UNTRAINED, Member, check_comparable, compare_members, comparison_tables
from polyroute.stats.compute import write_tables

log = logging.getLogger(__name__)


def _known(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def load_member(name: str, record: Mapping[str, Any]) -> Member:
    """A comparison member from its record (run, revision, stats, step, tokens); the step and tokens
    its store records win over the config's (another run's revisions are known only there)."""
    stats = open_store(record["stats"])
    return Member(
        name=name, stats=stats, run=record.get("run", ""), revision=record.get("revision", ""),
        step=_known(stats.attrs.get("training_step", record.get("step"))),
        tokens=_known(stats.attrs.get("training_tokens", record.get("tokens"))),
    )


def untrained_member(path: str | os.PathLike, settings: Mapping[str, Any], reference: str, run: str) -> Member:
    """A noise-floor routing store as an untrained member (step 0, 0 tokens), with the run's statistics."""
    routing = open_store(path)
    seed = routing.attrs.get("untrained_seed", "")
    return Member(name=f"{run}/untrained-seed{seed}", stats=configured_stats(routing, settings, reference), run=run,
                  step=0.0, tokens=0.0, kind=UNTRAINED)


def compare(*, members: Mapping[str, Mapping[str, Any]], untrained: Sequence[str | os.PathLike],
            settings: Mapping[str, Any], reference: str, run: str, store_out: str | os.PathLike,
            tables_out: str | os.PathLike, figures: Mapping[str, str | os.PathLike]) -> None:
    """Write the comparison store, its tables and its figures; incomparable members fail first, in one line.

    `members`: name -> record (run, revision, stats: the statistics store, step, tokens), in order."""
    models = [load_member(name, record) for name, record in members.items()]
    check_comparable(models)  # before the untrained statistics, the slow part
    floors = [untrained_member(path, settings, reference, run) for path in untrained]
    comparison = compare_members([*models, *floors])
    write_store(comparison, store_out)
    written = write_tables(comparison_tables(comparison), tables_out)
    plot_comparison(comparison, figures)
    log.info("compared %d members (%d untrained): %s, %d tables, %d figures", len(models) + len(floors), len(floors),
             store_out, len(written), len(figures))
