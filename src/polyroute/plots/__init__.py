"""Figures (matplotlib, no torch). Of routing statistics: each function takes a statistics dataset and
options, writes <out>.png and <out>.svg atomically and returns their paths. Of training: `plot_loss`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from polyroute.plots.depth import plot_by_depth
from polyroute.plots.experts import expert_class_counts, plot_expert_classes, plot_isolation
from polyroute.plots.heatmaps import plot_activation, plot_rise_maps, plot_similarity
from polyroute.plots.training import plot_loss
from polyroute.plots.vocabulary import plot_vocabulary

__all__ = [
    "plot_all", "plot_by_depth", "plot_similarity", "plot_activation", "plot_rise_maps",
    "plot_expert_classes", "expert_class_counts", "plot_isolation", "plot_vocabulary", "plot_loss", "FIGURES",
]

# figure name -> caption file in workflow/report/ (same stem)
FIGURES = (
    "divergence", "divergence_parallel", "entropy", "consistency", "similarity", "activation",
    "rise_maps", "expert_classes", "isolation", "vocabulary",
)


def _has_data(stats: xr.Dataset, name: str) -> bool:
    return name in stats and bool(np.isfinite(stats[name].values).any())


def plot_all(
    stats: xr.Dataset,
    out_dir: str | os.PathLike,
    *,
    target: str | None = None,
    high_resource: list[str] | None = None,
    similarity_layers: list[int] | None = None,
    activation_languages: list[str] | None = None,
) -> dict[str, list[str]]:
    """Every figure the data allows, into out_dir/<name>.{png,svg}; returns name -> paths.

    Figures whose inputs are absent (no per-token data, no parallel sequences, no high-resource list)
    are skipped, so the returned names say what was drawn. `target` defaults to the reference language.
    """
    out = Path(out_dir)
    ref = str(stats.attrs.get("reference_language", stats["language"].values[0]))
    written: dict[str, list[str]] = {}
    for name, variable in (("divergence", "divergence"), ("divergence_parallel", "divergence_parallel"),
                           ("entropy", "entropy_normalised"), ("consistency", "consistency")):
        if _has_data(stats, variable):
            written[name] = plot_by_depth(stats, out / name, variable=variable)
    written["similarity"] = plot_similarity(stats, out / "similarity", layers=similarity_layers)
    written["activation"] = plot_activation(stats, out / "activation", languages=activation_languages)
    written["rise_maps"] = plot_rise_maps(stats, out / "rise_maps", target=target or ref)
    written["expert_classes"] = plot_expert_classes(stats, out / "expert_classes")
    if high_resource:
        written["isolation"] = plot_isolation(stats, out / "isolation", high_resource=list(high_resource))
    if _has_data(stats, "vocab_overlap"):
        written["vocabulary"] = plot_vocabulary(stats, out / "vocabulary")
    return written
