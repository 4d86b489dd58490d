"""Expert-level figures: exclusive and shared experts per layer (Chen), routing isolation (RISE)."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from polyroute.plots._common import check_languages, layer_ticks, new_figure, require, save, shade_zones, tick_fontsize
from polyroute.stats.isolation import top_expert_overlap


def expert_class_counts(expert_class: xr.DataArray) -> xr.Dataset:
    """Per layer: experts exclusive to some language, shared (used, exclusive to none), unused by all."""
    cls = expert_class.transpose("language", "layer", "expert")
    exclusive = (cls == 2).any("language")
    used = (cls > 0).any("language")
    return xr.Dataset(
        {
            "exclusive": exclusive.sum("expert"),
            "shared": (used & ~exclusive).sum("expert"),
            "unused": (~used).sum("expert"),
        }
    )


def plot_expert_classes(stats: xr.Dataset, out: str | os.PathLike) -> list[str]:
    """Number of exclusive and shared experts per layer (stacked bars), plus exclusive experts per language."""
    require(stats, "expert_class")
    counts = expert_class_counts(stats["expert_class"])
    layers = stats["layer"].values
    x = np.arange(len(layers))
    fig = new_figure(9, 6.4)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.1])
    shade_zones(ax, layers)
    ax.bar(x, counts["exclusive"].values, color="#d95f02", label="exclusive to a language (W > θ)", zorder=2)
    ax.bar(x, counts["shared"].values, bottom=counts["exclusive"].values, color="#1b9e77", label="shared (used, W ≤ θ for all)", zorder=2)
    ax.set_ylabel("experts")
    theta = stats.attrs.get("thresholds", {}).get("theta", "θ")
    ax.set_title(f"Exclusive and shared experts per layer (θ = {theta}, of {stats.sizes['expert']} experts)", pad=16)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.9)

    per_lang = (stats["expert_class"] == 2).sum("expert").transpose("language", "layer")
    langs = [str(g) for g in per_lang["language"].values]
    # counts start at 0 (white); an all-zero map must read as "none", not as a mid-scale colour
    vmax = max(int(per_lang.max()), 1)
    im = ax2.imshow(per_lang.values, aspect="auto", cmap="Oranges", vmin=0, vmax=vmax, interpolation="nearest")
    ax2.set_yticks(range(len(langs)), langs if len(langs) <= 60 else [g if i % 2 == 0 else "" for i, g in enumerate(langs)], fontsize=tick_fontsize(len(langs)))
    ax2.set_ylabel("language")
    ax2.set_xlabel("MoE layer (model layer index)")
    layer_ticks(ax2, layers)
    fig.colorbar(im, ax=ax2, pad=0.01).set_label("exclusive experts")
    return save(fig, out)


def plot_isolation(
    stats: xr.Dataset,
    out: str | os.PathLike,
    *,
    high_resource: list[str],
    low_resource: list[str] | None = None,
    top_n: int | None = None,
) -> list[str]:
    """Routing isolation: share of top experts common to languages, high- vs low-resource (RISE Fig. 1).

    Left: mean over layers of the top-n overlap for every language pair, high-resource languages first.
    Right: per layer, mean overlap within the high group, within the low group and across groups.
    `top_n` defaults to the model's top-k.
    """
    require(stats, "frequency")
    langs = [str(g) for g in stats["language"].values]
    check_languages(stats, high_resource, "high_resource")
    low_resource = low_resource or [g for g in langs if g not in high_resource]
    check_languages(stats, low_resource, "low_resource")
    if not high_resource or not low_resource:
        raise ValueError("routing isolation needs at least one high- and one low-resource language")
    top_n = int(top_n or stats.attrs.get("top_k", 8))
    ov = top_expert_overlap(stats["frequency"], top_n)
    order = list(high_resource) + [g for g in low_resource if g not in high_resource]
    m = ov.sel(language=order, language_b=order).mean("layer").values
    hi = ov.sel(language=high_resource, language_b=high_resource)
    lo = ov.sel(language=low_resource, language_b=low_resource)
    cross = ov.sel(language=high_resource, language_b=low_resource).mean(("language", "language_b"))

    def within(block: xr.DataArray) -> np.ndarray:  # mean over distinct pairs (diagonal is 1 by definition)
        v = block.transpose("layer", "language", "language_b").values
        n = v.shape[1]
        if n < 2:
            return np.full(v.shape[0], np.nan)
        return (v.sum(axis=(1, 2)) - n) / (n * (n - 1))

    n = len(order)
    side = 3.2 + 0.05 * n
    fig = new_figure(side + 6.0, side + 0.4)
    ax, ax2 = fig.subplots(1, 2, width_ratios=[side, 5.0])
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fs = tick_fontsize(n)
    ax.set_xticks(range(n), order, rotation=90, fontsize=fs)
    ax.set_yticks(range(n), order, fontsize=fs)
    k = len(high_resource)
    for pos in (k - 0.5,):
        ax.axhline(pos, color="red", lw=1)
        ax.axvline(pos, color="red", lw=1)
    ax.set_title(f"Top-{top_n} expert overlap, mean over layers\n(high-resource first, red line)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8, pad=0.01)
    layers = stats["layer"].values
    x = np.arange(len(layers))
    shade_zones(ax2, layers)
    ax2.plot(x, within(hi), color="#1f78b4", lw=1.8, label="high ↔ high")
    ax2.plot(x, within(lo), color="#33a02c", lw=1.8, label="low ↔ low")
    ax2.plot(x, cross.values, color="#e31a1c", lw=1.8, label="high ↔ low")
    ax2.set_ylim(0, 1.02)
    layer_ticks(ax2, layers)
    ax2.set_xlabel("MoE layer (model layer index)")
    ax2.set_ylabel(f"share of top-{top_n} experts in common")
    ax2.legend(fontsize=8, frameon=False)
    ax2.set_title(f"Routing isolation per layer ({len(high_resource)} high, {len(low_resource)} low)", fontsize=9, pad=16)
    return save(fig, out)
