"""Shared figure plumbing: atomic PNG+SVG output, language colours and labels, RISE zone shading.

Figures are built on matplotlib.figure.Figure (no pyplot), so they render with Agg anywhere and never
touch a notebook's backend.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure

from polyroute.atomic import atomic_write_bytes
from polyroute.stats.zones import depth_zones

FORMATS = ("png", "svg")
ZONE_SHADES = {"shallow": "#dbe9f6", "middle": "#f3f3f3", "deep": "#fde0c5"}


def save(fig: Figure, out: str | os.PathLike, *, dpi: int = 150) -> list[str]:
    """Write `fig` to <out>.png and <out>.svg atomically; return the paths."""
    out = Path(out)
    if out.suffix in {".png", ".svg"}:
        out = out.with_suffix("")
    paths = []
    for fmt in FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
        path = out.with_name(f"{out.name}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(str(path))
    return paths


def require(stats: xr.Dataset, *names: str) -> None:
    """Raise a one-line ValueError naming the statistics variables a figure needs but the store lacks."""
    missing = [n for n in names if n not in stats.variables]
    if missing:
        raise ValueError(f"statistics store lacks {missing} needed for this figure")


def check_languages(stats: xr.Dataset, languages: list[str], setting: str) -> None:
    """Raise when a language asked for in a figure setting is not in the store."""
    have = set(str(g) for g in stats["language"].values)
    unknown = [g for g in languages if g not in have]
    if unknown:
        raise ValueError(f"{setting}: language(s) {unknown} are not in the statistics store")


def tick_fontsize(n: int) -> float:
    """Readable tick labels for n categories: 8 pt for a few, down to 3.5 pt for ~100."""
    return float(np.clip(8 - 0.05 * n, 3.5, 8))


def shade_zones(ax, layers: np.ndarray, *, axis: str = "x", label: bool = True) -> None:
    """Shade the RISE depth zones (shallow / middle / deep) behind a plot over layer positions."""
    zones = depth_zones(len(layers))
    span = ax.axvspan if axis == "x" else ax.axhspan
    for name, rng in zones.items():
        if len(rng) == 0:
            continue
        lo, hi = rng.start - 0.5, rng.stop - 0.5
        span(lo, hi, color=ZONE_SHADES[name], zorder=0, lw=0)
        if label:
            if axis == "x":
                ax.text((lo + hi) / 2, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=7, color="0.35")
            else:
                ax.text(1.01, (lo + hi) / 2, name, transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=7, color="0.35", rotation=-90)


def layer_ticks(ax, layers: np.ndarray, *, axis: str = "x", max_ticks: int = 16) -> None:
    """Ticks at layer positions labelled with the model's layer index, thinned to at most max_ticks."""
    step = max(1, int(np.ceil(len(layers) / max_ticks)))
    pos = np.arange(0, len(layers), step)
    if axis == "x":
        ax.set_xticks(pos, [str(layers[p]) for p in pos])
    else:
        ax.set_yticks(pos, [str(layers[p]) for p in pos])


def language_colours(languages: list[str], score: np.ndarray | None, cmap: str = "viridis"):
    """Colours per language: by score through `cmap` when given (NaN grey), else spread over a qualitative map.

    Returns (colours, norm or None) so a colourbar can be drawn for scores.
    """
    from matplotlib.colors import Normalize

    n = len(languages)
    if score is not None and np.isfinite(score).any():
        finite = score[np.isfinite(score)]
        norm = Normalize(vmin=float(finite.min()), vmax=float(finite.max()) if np.ptp(finite) > 0 else float(finite.min()) + 1)
        cm = colormaps[cmap]
        return [cm(norm(s)) if np.isfinite(s) else (0.6, 0.6, 0.6, 1.0) for s in score], norm
    cm = colormaps["tab10" if n <= 10 else "turbo"]
    return [cm(i / max(n - 1, 1)) if n > 10 else cm(i) for i in range(n)], None


def pick_labelled(values: np.ndarray, languages: list[str], n_each: int = 3, always: list[str] | None = None) -> list[int]:
    """Indices of the languages to label: the n_each highest and lowest by `values`, plus `always`."""
    order = [i for i in np.argsort(values) if np.isfinite(values[i])]
    chosen = order[:n_each] + order[-n_each:]
    for g in always or []:
        if g in languages:
            chosen.append(languages.index(g))
    return sorted(set(chosen))


def spread_labels(ys: np.ndarray, lo: float, hi: float, gap_share: float = 0.045) -> np.ndarray:
    """Label heights for the sorted values `ys`: at least a gap apart, all inside [lo, hi].

    Pushing clustered labels apart only upwards sends them past the axes (over the title);
    labels are pushed up, then the stack is pulled back under `hi`, and the gap shrinks when
    the labels cannot all fit.
    """
    ys = np.sort(np.asarray(ys, dtype=float))
    span = hi - lo if hi > lo else 1.0
    gap = min(span * gap_share, span / max(len(ys) - 1, 1))
    placed = np.clip(ys, lo, hi)
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    placed[-1] = min(placed[-1], hi)
    for i in range(len(placed) - 2, -1, -1):
        placed[i] = min(placed[i], placed[i + 1] - gap)
    return placed


def new_figure(width: float, height: float, layout: str = "constrained") -> Figure:
    """A Figure with constrained layout (labels never overlap the colourbars); "compressed" for image grids."""
    return Figure(figsize=(width, height), layout=layout)


def expert_axis(ax) -> None:
    """Integer expert ticks on the x axis, labelled."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    ax.set_xlabel("expert")
