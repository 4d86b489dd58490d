"""Steering strength sweeps: the mean change over languages at each strength, and the collapse point.

Collapse point (Chen et al. report collapse above lambda 0.026): the smallest swept strength from
which on, at it and at every larger strength, the mean change over languages is worse than the base
model by more than its 95% interval (upper bound below 0 for a higher-is-better metric, lower bound
above 0 for perplexity-like ones). The interval of the mean combines the per-language paired
bootstrap intervals as independent normal errors (the languages' items are disjoint):
``SE_g = (hi_g - lo_g) / (2 * 1.96)``, ``SE = sqrt(sum_g SE_g^2) / G``, mean ``+- 1.96 SE``.
Requiring every larger strength to be worse too keeps one noisy dip from counting as a collapse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["Z95", "SWEEP_COLUMNS", "sweep_means", "collapse_point"]

Z95 = 1.959963984540054
SWEEP_COLUMNS = ["experiment", "task", "metric", "strength", "languages", "mean_change", "mean_ci_low",
                 "mean_ci_high"]


def sweep_means(changes: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, task, metric, strength) of steering rows with several strengths: the mean
    change over languages and its 95% interval (see the module docstring)."""
    steer = changes[(changes["kind"] == "steer") & changes["strength"].notna()]
    counts = steer.groupby(["experiment", "task", "metric"])["strength"].transform("nunique")
    steer = steer[counts > 1]
    rows = []
    for (experiment, task, metric, strength), group in steer.groupby(["experiment", "task", "metric", "strength"]):
        se = (group["change_ci_high"] - group["change_ci_low"]) / (2 * Z95)
        mean = float(group["change"].mean())
        half = Z95 * float(np.sqrt((se**2).sum())) / len(group)
        rows.append({"experiment": experiment, "task": task, "metric": metric, "strength": float(strength),
                     "languages": len(group), "mean_change": mean, "mean_ci_low": mean - half,
                     "mean_ci_high": mean + half})
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def collapse_point(sweep: pd.DataFrame, *, higher_is_better: bool = True) -> float | None:
    """The collapse point of one sweep (rows of `sweep_means` for one experiment, task and metric):
    the smallest strength from which on every mean change is worse than base beyond its interval;
    None when the largest strength is not."""
    rows = sweep.sort_values("strength")
    worse = (rows["mean_ci_high"] < 0) if higher_is_better else (rows["mean_ci_low"] > 0)
    collapse = None
    for strength, bad in zip(rows["strength"][::-1], worse[::-1]):
        if not bad:
            break
        collapse = float(strength)
    return collapse
