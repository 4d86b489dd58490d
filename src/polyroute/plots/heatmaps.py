"""Heatmaps: routing similarity (clustered languages), expert activation per language, RISE maps."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from polyroute.plots._common import check_languages, expert_axis, layer_ticks, new_figure, require, save, tick_fontsize
from polyroute.stats.zones import depth_zones


def cluster_order(sim: np.ndarray) -> np.ndarray:
    """Leaf order of average-linkage clustering on distance 1 - similarity (scipy)."""
    n = sim.shape[0]
    if n < 3:
        return np.arange(n)
    dist = np.clip(1.0 - (sim + sim.T) / 2.0, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return leaves_list(linkage(squareform(dist, checks=False), method="average"))


def default_layers(layers: np.ndarray) -> list[int]:
    """First, middle and last MoE layers (model indices)."""
    pos = sorted({0, len(layers) // 2, len(layers) - 1})
    return [int(layers[p]) for p in pos]


def plot_similarity(stats: xr.Dataset, out: str | os.PathLike, *, layers: list[int] | None = None) -> list[str]:
    """Routing-similarity heatmaps at chosen layers; languages ordered by clustering the mean over those layers."""
    require(stats, "similarity")
    sim = stats["similarity"].transpose("language", "language_b", "layer")
    layers = layers or default_layers(sim["layer"].values)
    unknown = [l for l in layers if l not in set(int(x) for x in sim["layer"].values)]
    if unknown:
        raise ValueError(f"similarity layers {unknown} are not MoE layers of the store")
    chosen = sim.sel(layer=layers).values
    order = cluster_order(np.nanmean(chosen, axis=2))
    names = [str(g) for g in sim["language"].values[order]]
    n = len(names)
    vmin = float(np.nanmin(chosen[np.isfinite(chosen)])) if np.isfinite(chosen).any() else 0.0
    side = 3.2 + 0.055 * n
    fig = new_figure(side * len(layers) + 1.0, side + 0.6, layout="compressed")
    axes = fig.subplots(1, len(layers), squeeze=False)[0]
    fs = tick_fontsize(n)
    im = None
    for ax, (j, layer) in zip(axes, enumerate(layers)):
        m = chosen[:, :, j][np.ix_(order, order)]
        im = ax.imshow(m, cmap="magma", vmin=vmin, vmax=1.0, interpolation="nearest")
        ax.set_title(f"layer {layer}", fontsize=10)
        ax.set_xticks(range(n), names, rotation=90, fontsize=fs)
        ax.set_yticks(range(n), names if j == 0 else [], fontsize=fs)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.8, pad=0.01)
    cb.set_label("routing similarity 1 - JSD / ln 2")
    fig.suptitle("Cross-language routing similarity (languages clustered)")
    return save(fig, out)


def pick_languages(stats: xr.Dataset, n: int = 4) -> list[str]:
    """A few languages spread over the divergence range: the reference, then evenly spaced by mean divergence."""
    langs = [str(g) for g in stats["language"].values]
    ref = str(stats.attrs.get("reference_language", langs[0]))
    if "divergence" not in stats:
        return langs[:n]
    mean = stats["divergence"].mean("layer").values
    order = [langs[i] for i in np.argsort(mean) if langs[i] != ref]
    idx = np.unique(np.linspace(0, len(order) - 1, max(n - 1, 1)).round().astype(int)) if order else []
    return ([ref] if ref in langs else []) + [order[i] for i in idx]


def plot_activation(
    stats: xr.Dataset, out: str | os.PathLike, *, languages: list[str] | None = None, n: int = 4
) -> list[str]:
    """Expert-activation frequency heatmaps (layer x expert), one facet per selected language, shared scale."""
    require(stats, "frequency")
    languages = languages or pick_languages(stats, n)
    check_languages(stats, languages, "activation figure languages")
    freq = stats["frequency"].sel(language=languages).transpose("language", "layer", "expert")
    layers, n_exp = freq["layer"].values, freq.sizes["expert"]
    cols = min(2, len(languages))
    rows = int(np.ceil(len(languages) / cols))
    w = 3.0 + 0.045 * n_exp
    h = max(2.6, 1.2 + 0.07 * len(layers))
    fig = new_figure(w * cols + 0.8, h * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    vmax = float(np.nanpercentile(freq.values, 99.5)) or 1.0
    im = None
    for ax, g in zip(axes, languages):
        im = ax.imshow(freq.sel(language=g).values, aspect="auto", cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(g, fontsize=9)
        layer_ticks(ax, layers, axis="y")
        expert_axis(ax)
        ax.set_ylabel("MoE layer")
    for ax in axes[len(languages):]:
        ax.set_visible(False)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.8, pad=0.01)
    cb.set_label("activation frequency (count / tokens)")
    fig.suptitle("Expert activation per language")
    return save(fig, out)


def _zone_lines(ax, n_layers: int) -> None:
    """Horizontal lines at the RISE zone boundaries, with the zone names on the right."""
    for name, rng in depth_zones(n_layers).items():
        if len(rng) == 0:
            continue
        if rng.start > 0:
            ax.axhline(rng.start - 0.5, color="white", lw=1.6)
            ax.axhline(rng.start - 0.5, color="black", lw=0.8, ls="--")
        ax.text(1.01, (rng.start + rng.stop - 1) / 2, name, transform=ax.get_yaxis_transform(), rotation=-90,
                va="center", ha="left", fontsize=8)


def plot_rise_maps(stats: xr.Dataset, out: str | os.PathLike, *, target: str) -> list[str]:
    """Specificity of `target` and cross-language overlap per (layer, expert), with the RISE zones drawn."""
    require(stats, "specificity", "overlap")
    check_languages(stats, [target], "RISE map target")
    spec = stats["specificity"].sel(language=target).transpose("layer", "expert").values
    ovl = stats["overlap"].transpose("layer", "expert").values
    layers = stats["layer"].values
    n_exp = stats.sizes["expert"]
    fig = new_figure(2 * (3.0 + 0.04 * n_exp) + 1.5, max(3.6, 1.5 + 0.07 * len(layers)))
    axes = fig.subplots(1, 2)
    panels = [
        (spec, f"Specificity of {target}\n(a_target / mean_g a)", "magma", float(np.nanpercentile(spec, 99.5)) or 1.0),
        (ovl, "Overlap across languages\n1 / (1 + CV)", "cividis", 1.0),
    ]
    for ax, (m, title, cmap, vmax) in zip(axes, panels):
        im = ax.imshow(m, aspect="auto", cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        layer_ticks(ax, layers, axis="y")
        expert_axis(ax)
        ax.set_ylabel("MoE layer")
        _zone_lines(ax, len(layers))
        fig.colorbar(im, ax=ax, shrink=0.85, pad=0.06)
    fig.suptitle("RISE scores with shallow / middle / deep zones")
    return save(fig, out)
