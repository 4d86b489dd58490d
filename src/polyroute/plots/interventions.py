"""Figures of routing interventions: the steering strength sweep with its collapse point, the masking
damage per depth window and language, and the routing shift each intervention causes per layer."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from polyroute.plots._common import language_colours, new_figure, save, tick_fontsize

__all__ = ["plot_sweep", "plot_masking", "plot_routing_shift"]


def _empty(message: str, out: str | os.PathLike) -> list[str]:
    """A figure that says why there is nothing to draw (the rule's output exists either way)."""
    fig = new_figure(6, 2)
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return save(fig, out)


def _errors(frame: pd.DataFrame, value: str, low: str, high: str) -> np.ndarray:
    return np.nan_to_num(np.vstack([frame[value] - frame[low], frame[high] - frame[value]]))


def plot_sweep(changes: pd.DataFrame, sweep: pd.DataFrame, collapse: Mapping[tuple[str, str], float | None],
               out: str | os.PathLike) -> list[str]:
    """One panel per (experiment, task) of `sweep` (`polyroute.evaluate.sweep.sweep_means`): each
    language's change vs base against strength (whiskers: paired 95% interval), the mean over languages
    with its interval (black), and the collapse point `collapse[(experiment, task)]` as a red line."""
    panels = list(sweep.groupby(["experiment", "task"], sort=True)) if not sweep.empty else []
    if not panels:
        return _empty("no steering experiment sweeps several strengths", out)
    fig = new_figure(7.5, 2.8 * len(panels))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
    for ax, ((experiment, task), means) in zip(axes, panels):
        rows = changes[(changes["experiment"] == experiment) & (changes["task"] == task) & (changes["kind"] == "steer")]
        languages = sorted(rows["language"].unique())
        colours, _ = language_colours(languages, None)
        for colour, language in zip(colours, languages):
            line = rows[rows["language"] == language].sort_values("strength")
            ax.errorbar(line["strength"], line["change"], yerr=_errors(line, "change", "change_ci_low", "change_ci_high"),
                        color=colour, lw=0.9, alpha=0.75, capsize=2, marker=".", label=language)
        means = means.sort_values("strength")
        ax.errorbar(means["strength"], means["mean_change"], color="black", lw=2.2, capsize=3, marker="o", zorder=5,
                    yerr=_errors(means, "mean_change", "mean_ci_low", "mean_ci_high"), label="mean over languages")
        ax.axhline(0, color="0.3", lw=0.6)
        point = collapse.get((experiment, task))
        if point is not None:
            ax.axvline(point, color="tab:red", ls="--", lw=1.2, label=f"collapse point {point:g}")
        if means["strength"].min() > 0 and means["strength"].max() >= 10 * means["strength"].min():
            ax.set_xscale("log")  # sweeps like 0.01 ... 1 would crowd their small strengths together
        ax.set_xlabel("strength (lambda)", fontsize=8)
        ax.set_ylabel(f"change in {means['metric'].iloc[0]}", fontsize=8)
        ax.set_title(f"steer-{experiment} on {task}: change vs base", fontsize=9)
        ax.legend(fontsize=6, ncols=4)
    return save(fig, out)


def plot_masking(changes: pd.DataFrame, out: str | os.PathLike, *, labels: Mapping[str, str] | None = None,
                 masked: Mapping[str, str] | None = None) -> list[str]:
    """One panel per (task, metric) of the mask rows of `changes` (the main metric, and language
    consistency where a generative task was evaluated): bars per language, one colour per experiment
    (`labels[experiment]`, e.g. its window and layers, in the order of `labels`), whiskers the paired 95% interval; the masked
    language (`masked[experiment]`) is labelled on the axis."""
    rows = changes[changes["kind"] == "mask"]
    if rows.empty:
        return _empty("no masking experiment was evaluated", out)
    panels = list(rows.groupby(["task", "metric"], sort=True))
    labels, masked = labels or {}, masked or {}
    fig = new_figure(7.5, 2.6 * len(panels))
    axes = np.atleast_1d(fig.subplots(len(panels), 1, squeeze=False)[:, 0])
    for ax, ((task, metric), frame) in zip(axes, panels):
        order = list(labels)  # the caller's order (e.g. by depth), then the table's
        experiments = sorted(dict.fromkeys(frame["experiment"]), key=lambda e: order.index(e) if e in order else len(order))
        languages = sorted(frame["language"].unique())
        width = 0.8 / len(experiments)
        x = np.arange(len(languages))
        for e, experiment in enumerate(experiments):
            bars = frame[frame["experiment"] == experiment].set_index("language").reindex(languages)
            ax.bar(x + (e - (len(experiments) - 1) / 2) * width, bars["change"], width, capsize=2,
                   yerr=_errors(bars, "change", "change_ci_low", "change_ci_high"), label=labels.get(experiment, experiment))
        targets = {masked[e] for e in experiments if e in masked}
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(x, [f"{g}\n(masked)" if g in targets else g for g in languages], fontsize=tick_fontsize(len(languages)))
        ax.set_ylabel(f"change in {metric}", fontsize=8)
        ax.set_title(f"{task}: masking a language's exclusive experts, change vs base", fontsize=9)
        ax.legend(fontsize=7, ncols=min(len(experiments), 3))
    return save(fig, out)


def plot_routing_shift(table: pd.DataFrame, out: str | os.PathLike) -> list[str]:
    """One row per intervention of `table` (`polyroute.stats.shift.shift_table`): left, the JSD between
    each language's routing with and without the intervention per layer (black: mean over languages);
    right, the share of top-k slots on the edited experts per layer without and with it (language mean)."""
    if table.empty:
        return _empty("no intervention routing store", out)
    panels = list(table.groupby("intervention", sort=False))
    fig = new_figure(9, 2.6 * len(panels))
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for (ax_jsd, ax_share), (name, frame) in zip(axes, panels):
        layers = np.sort(frame["layer"].unique())
        x = np.arange(len(layers))
        wide = frame.pivot(index="language", columns="layer", values="jsd").reindex(columns=layers)
        colours, _ = language_colours(list(wide.index), None)
        for colour, (language, values) in zip(colours, wide.iterrows()):
            ax_jsd.plot(x, values.values, color=colour, lw=0.9, alpha=0.7, label=language)
        ax_jsd.plot(x, wide.mean().values, color="black", lw=2.2, label="mean")
        ax_jsd.set_ylabel("JSD (nats)", fontsize=8)
        ax_jsd.set_title(f"{name}: routing with vs without", fontsize=9)
        ax_jsd.legend(fontsize=5, ncols=4)
        share = frame.groupby("layer")[["edited_share_base", "edited_share_shifted"]].mean().reindex(layers)
        ax_share.bar(x - 0.2, share["edited_share_base"], 0.4, label="without", color="0.6")
        ax_share.bar(x + 0.2, share["edited_share_shifted"], 0.4, label="with", color="tab:orange")
        ax_share.set_ylabel("share of top-k slots", fontsize=8)
        ax_share.set_title(f"{name}: routings on the edited experts", fontsize=9)
        ax_share.legend(fontsize=7)
        for ax in (ax_jsd, ax_share):
            ax.set_xticks(x, [str(layer) for layer in layers], fontsize=tick_fontsize(len(layers)))
            ax.set_xlabel("MoE layer", fontsize=8)
            ax.set_xlim(-0.5, len(layers) - 0.5)
    return save(fig, out)
