"""The noise-floor figure: each routing statistic per layer for the model and for the same architecture
untrained (mean over initialisation seeds, min-max band)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from polyroute.plots._common import new_figure, save
from polyroute.stats.noise_floor import AGGREGATE

__all__ = ["plot_noise_floor"]

_LABELS = {
    "jsd": "JSD from the reference (nats),\nmean over languages",
    "divergence": "normalised divergence D,\nmean over languages",
    "divergence_parallel": "parallel divergence,\nmean over languages",
    "specialisation": "specialisation\nI(language; expert) / H(language)",
    "entropy_normalised": "routing entropy / ln E,\nmean over languages",
    "max_affinity": "largest affinity W of {language}",
    "exclusive_experts": "experts exclusive to {language}",
}


def plot_noise_floor(table: pd.DataFrame, out: str | os.PathLike) -> list[str]:
    """One panel per (statistic, language) of `table` (`polyroute.stats.noise_floor.noise_floor_table`),
    in its row order: the model's value per layer (line) and the untrained models' mean (dashed) and
    min-max band."""
    panels = list(table.groupby(["statistic", "language"], sort=False))
    columns = 3
    rows = -(-len(panels) // columns)
    fig = new_figure(3.6 * columns, 2.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False).ravel())
    for ax, ((statistic, language), frame) in zip(axes, panels):
        frame = frame.sort_values("layer")
        layers = frame["layer"].to_numpy()
        seeds = int(frame["untrained_seeds"].iloc[0])
        ax.fill_between(layers, frame["untrained_min"], frame["untrained_max"], color="0.85",
                        label=f"untrained, {seeds} seed{'s' if seeds > 1 else ''} (min-max)")
        ax.plot(layers, frame["untrained_mean"], color="0.45", ls="--", lw=1.2, label="untrained, mean")
        ax.plot(layers, frame["model"], color="C0", marker="o", ms=3, lw=1.5, label="model")
        label = _LABELS.get(statistic, statistic)
        ax.set_ylabel(label.format(language=language) if language != AGGREGATE else label, fontsize=8)
        ax.set_xlabel("MoE layer", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if statistic == "exclusive_experts":  # a count
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Routing statistics of the model against the same architecture untrained (noise floor)", fontsize=10)
    return save(fig, out)
