"""Routing similarity against vocabulary overlap, per layer group (Khandelwal)."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from polyroute.plots._common import new_figure, require, save
from polyroute.stats.correlation import pair_correlation
from polyroute.stats.zones import ZONE_NAMES, depth_zones


def plot_vocabulary(stats: xr.Dataset, out: str | os.PathLike) -> list[str]:
    """One scatter per RISE layer group: each point a language pair, vocabulary overlap vs mean similarity."""
    require(stats, "vocab_overlap", "similarity")
    ov = stats["vocab_overlap"].transpose("language", "language_b").values
    if not np.isfinite(ov).any():
        raise ValueError(f"vocabulary overlap is all NaN: {stats['vocab_overlap'].attrs.get('note', 'no per-token data')}")
    sim = stats["similarity"].transpose("language", "language_b", "layer").values
    iu = np.triu_indices(ov.shape[0], k=1)
    zones = {z: r for z, r in depth_zones(sim.shape[2]).items() if len(r)}
    fig = new_figure(3.6 * len(zones) + 0.4, 3.8)
    axes = fig.subplots(1, len(zones), sharey=True, squeeze=False)[0]
    small = len(iu[0]) > 500
    for ax, (zone, rng) in zip(axes, zones.items()):
        y = sim[:, :, list(rng)].mean(axis=2)[iu]
        x = ov[iu]
        c = pair_correlation(x, y)
        ax.scatter(x, y, s=4 if small else 14, alpha=0.35 if small else 0.8, color="#3b6ea5", lw=0)
        layers = stats["layer"].values[list(rng)]
        ax.set_title(f"{zone} layers {layers[0]}-{layers[-1]}", fontsize=9)
        ax.text(0.03, 0.95, f"Pearson r = {c['pearson_r']:.2f}\nSpearman ρ = {c['spearman_rho']:.2f}\nn = {int(c['n'])} pairs",
                transform=ax.transAxes, va="top", fontsize=8, bbox={"fc": "white", "ec": "0.8", "alpha": 0.9})
        ax.set_xlabel("vocabulary overlap (shared token mass)")
    axes[0].set_ylabel("routing similarity (mean over layer group)")
    fig.suptitle("Routing similarity vs vocabulary overlap of language pairs")
    assert set(zones) <= set(ZONE_NAMES)
    return save(fig, out)
