"""One line per language across depth: divergence from the reference (the U-shape), entropy, consistency."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from polyroute.plots._common import (
    language_colours,
    layer_ticks,
    new_figure,
    pick_labelled,
    require,
    save,
    shade_zones,
    spread_labels,
)
from polyroute.stats.zones import depth_zones

TITLES = {
    "divergence": ("Routing divergence from {ref} across depth", "entropy-normalised JSD from {ref}"),
    "divergence_parallel": ("Routing divergence from {ref} (parallel sequences)", "mean entropy-normalised JSD from {ref}"),
    "entropy_normalised": ("Routing entropy per layer", "entropy / log E"),
    "entropy": ("Routing entropy per layer", "entropy (log base {base:.3g})"),
    "consistency": ("Token routing consistency per layer", "mean |top-k(t) ∩ top-k(t+1)| / k"),
}


def plot_by_depth(
    stats: xr.Dataset,
    out: str | os.PathLike,
    *,
    variable: str = "divergence",
    score: str | None = "score",
    label: int = 3,
    highlight: list[str] | None = None,
) -> list[str]:
    """Lines of `variable`(language, layer) across layers, coloured by the per-language `score` if present.

    Labels the `label` languages with the highest and lowest middle-layer values, plus `highlight`;
    the median over languages is drawn in black and the RISE zones are shaded.
    """
    require(stats, variable)
    da = stats[variable].transpose("language", "layer")
    ref = str(stats.attrs.get("reference_language", ""))
    languages = [str(g) for g in da["language"].values]
    layers = da["layer"].values
    values = da.values
    if variable.startswith("divergence") and ref in languages:  # the reference's own line is 0 everywhere
        keep = [i for i, g in enumerate(languages) if g != ref]
        languages, values = [languages[i] for i in keep], values[keep]
    if not np.isfinite(values).any():
        raise ValueError(f"statistics variable {variable!r} is all NaN: {stats[variable].attrs.get('note', 'nothing to plot')}")
    score_vals = None
    if score and score in stats:
        score_vals = stats[score].sel(language=languages).values.astype(float)
    colours, norm = language_colours(languages, score_vals)

    fig = new_figure(8, 4.8)
    ax = fig.add_subplot()
    shade_zones(ax, layers)
    x = np.arange(len(layers))
    many = len(languages) > 20
    for i, g in enumerate(languages):
        ax.plot(x, values[i], color=colours[i], lw=0.8 if many else 1.4, alpha=0.7 if many else 0.95, zorder=2)
    ax.plot(x, np.nanmedian(values, axis=0), color="black", lw=2.2, zorder=3, label="median over languages")
    mid = list(depth_zones(len(layers))["middle"]) or list(range(len(layers)))
    mid_vals = np.nanmean(values[:, mid], axis=1) if np.isfinite(values[:, mid]).any() else np.zeros(len(languages))
    chosen = pick_labelled(mid_vals, languages, label, highlight) if many else range(len(languages))
    # labels at the right end, spread vertically so they do not overprint
    ends = values[:, -1]
    chosen = [i for i in chosen if np.isfinite(ends[i])]
    if chosen:
        placed = spread_labels(ends[chosen], float(np.nanmin(values)), float(np.nanmax(values)))
        for (i, y) in zip(sorted(chosen, key=lambda j: ends[j]), placed):
            ax.annotate(languages[i], (x[-1], ends[i]), xytext=(x[-1] + 0.6, y), fontsize=7, color=colours[i],
                        va="center", arrowprops={"arrowstyle": "-", "color": colours[i], "lw": 0.5}, annotation_clip=False)
    ax.set_xlim(-0.5, len(layers) - 0.5 + max(1.5, 0.12 * len(layers)))
    layer_ticks(ax, layers)
    title, ylabel = TITLES.get(variable, (variable, variable))
    base = float(stats.attrs.get("log_base", np.e))
    ax.set_title(title.format(ref=ref or "reference", base=base), pad=16)
    ax.set_ylabel(ylabel.format(ref=ref or "reference", base=base))
    ax.set_xlabel("MoE layer (model layer index)")
    ax.legend(loc="upper center", fontsize=7, frameon=False)
    if norm is not None:
        from matplotlib.cm import ScalarMappable

        cb = fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=ax, pad=0.01, fraction=0.04)
        cb.set_label(stats[score].attrs.get("long_name", score) if score in stats else "score")
    ax.text(0.0, -0.16, f"{len(languages)} languages", transform=ax.transAxes, fontsize=7, color="0.4")
    return save(fig, out)
