"""Figure of evaluation gains: each adapter's change over the base model per task and language, with
the paired 95% bootstrap interval, the target language marked (the RISE table as a picture)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from polyroute.plots._common import save, tick_fontsize

__all__ = ["plot_gains"]


def plot_gains(gains: pd.DataFrame, out: str | os.PathLike) -> list[str]:
    """One panel per (task, target): bars per language, one colour per method; writes PNG + SVG."""
    panels = list(gains.groupby(["task", "target"], sort=True)) if not gains.empty else []
    fig = Figure(figsize=(7.5, 2.6 * max(len(panels), 1)), layout="constrained")
    if not panels:
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no trained adapter was evaluated", ha="center", va="center")
        ax.set_axis_off()
        return save(fig, out)
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
    for ax, ((task, target), frame) in zip(axes, panels):
        methods = sorted(frame["method"].unique())
        languages = list(dict.fromkeys(frame.sort_values("language")["language"]))
        width = 0.8 / len(methods)
        x = np.arange(len(languages))
        for m, method in enumerate(methods):
            rows = frame[frame["method"] == method].set_index("language").reindex(languages)
            err = np.vstack([rows["gain"] - rows["gain_ci_low"], rows["gain_ci_high"] - rows["gain"]])
            ax.bar(x + (m - (len(methods) - 1) / 2) * width, rows["gain"], width, yerr=np.nan_to_num(err),
                   capsize=2, label=method)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, [f"{g}\n(target)" if g == target else g for g in languages],
                      fontsize=tick_fontsize(len(languages)))
        metric = frame["metric"].iloc[0]
        ax.set_ylabel(f"gain in {metric}", fontsize=8)
        ax.set_title(f"{task}: adapters for {target} vs base", fontsize=9)
        ax.legend(fontsize=7, ncols=len(methods))
    return save(fig, out)
