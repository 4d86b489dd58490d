"""The noise floor of the routing statistics: the model's per-layer statistics beside those of the same
architecture with untrained weights (one statistics Dataset per initialisation seed), on the same text.

An untrained MoE does not route uniformly: its random embeddings and routers send different tokens to
different experts, so languages whose text differs (scripts above all) diverge even before training.
What a trained model shows beyond that range is learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import xarray as xr

from polyroute.stats.experts import EXCLUSIVE

__all__ = ["AGGREGATE", "FLOOR_COLUMNS", "layer_statistics", "noise_floor_table"]

# the `language` of a row that aggregates over languages (not a language code, which has a script)
AGGREGATE = "all"
# per-language statistics shown as their mean over the languages other than the reference
_MEAN_OVER_OTHERS = ("jsd", "divergence", "divergence_parallel")
FLOOR_COLUMNS = ["statistic", "language", "layer", "model", "untrained_mean", "untrained_min", "untrained_max",
                 "untrained_seeds"]


def layer_statistics(stats: xr.Dataset, *, reference: str, targets: Sequence[str]) -> pd.DataFrame:
    """Rows (statistic, language, layer, value) of one statistics Dataset (`compute_stats`).

    Language `AGGREGATE`: jsd, divergence and divergence_parallel (when present) as their mean over
    the non-reference languages, specialisation, and entropy_normalised as its mean over languages.
    Per target language: max_affinity (the largest normalised affinity W over experts) and
    exclusive_experts (how many experts have W > theta, the store's threshold).
    """
    languages = [str(g) for g in stats["language"].values]
    missing = [g for g in [reference, *targets] if g not in languages]
    if missing:
        raise ValueError(f"statistics store has no language {missing}")
    others = [g for g in languages if g != reference]
    per_layer: list[tuple[str, str, xr.DataArray]] = [
        (name, AGGREGATE, stats[name].sel(language=others).mean("language"))
        for name in _MEAN_OVER_OTHERS if name in stats and others
    ]
    per_layer.append(("specialisation", AGGREGATE, stats["specialisation"]))
    per_layer.append(("entropy_normalised", AGGREGATE, stats["entropy_normalised"].mean("language")))
    for target in targets:
        per_layer.append(("max_affinity", target, stats["affinity"].sel(language=target).max("expert")))
        exclusive = (stats["expert_class"].sel(language=target) == EXCLUSIVE).sum("expert")
        per_layer.append(("exclusive_experts", target, exclusive))
    rows = [
        {"statistic": name, "language": language, "layer": int(layer), "value": float(value)}
        for name, language, values in per_layer
        for layer, value in zip(values["layer"].values, values.values)
    ]
    return pd.DataFrame(rows, columns=["statistic", "language", "layer", "value"])


def noise_floor_table(model: xr.Dataset, untrained: Sequence[xr.Dataset], *, reference: str,
                      targets: Sequence[str]) -> pd.DataFrame:
    """The model's `layer_statistics` beside the mean, min and max over the untrained Datasets."""
    if not untrained:
        raise ValueError("the noise floor needs the statistics of at least one untrained model")
    keys = ["statistic", "language", "layer"]
    ours = layer_statistics(model, reference=reference, targets=targets).rename(columns={"value": "model"})
    floors = pd.concat([layer_statistics(s, reference=reference, targets=targets) for s in untrained])
    spread = floors.groupby(keys, sort=False)["value"].agg(["mean", "min", "max", "count"]).reset_index()
    spread.columns = [*keys, "untrained_mean", "untrained_min", "untrained_max", "untrained_seeds"]
    table = ours.merge(spread, on=keys, how="left")  # the model's row order
    unmatched = table[table["untrained_seeds"] != len(untrained)]
    if not unmatched.empty or len(spread) != len(ours):
        first = unmatched.iloc[0] if not unmatched.empty else spread.merge(ours, on=keys, how="left_anti").iloc[0]
        raise ValueError(f"the untrained statistics do not match the model's: {first['statistic']} at layer "
                         f"{first['layer']} is not in all of them (a different architecture or extraction?)")
    table["untrained_seeds"] = table["untrained_seeds"].astype(int)
    return table[FLOOR_COLUMNS]
