"""Correlations (Pearson and Spearman, with n); the middle layers come from the RISE depth zones."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from scipy import stats as sps

from polyroute.stats.zones import depth_zones

STATISTICS = ("pearson_r", "pearson_p", "spearman_rho", "spearman_p", "n")


def pair_correlation(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation of paired samples (pairs with a NaN dropped), with n.

    NaN statistics when fewer than 3 pairs remain or one side is constant.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, n = x[ok], y[ok], int(ok.sum())
    nan = float("nan")
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson_r": nan, "pearson_p": nan, "spearman_rho": nan, "spearman_p": nan, "n": float(n)}
    pr, sr = sps.pearsonr(x, y), sps.spearmanr(x, y)
    return {
        "pearson_r": float(pr.statistic),
        "pearson_p": float(pr.pvalue),
        "spearman_rho": float(sr.statistic),
        "spearman_p": float(sr.pvalue),
        "n": float(n),
    }


def as_score(scores: Mapping[str, float] | xr.DataArray, languages: np.ndarray) -> xr.DataArray:
    """A per-language score as DataArray(language) aligned to `languages` (NaN where not given).

    Raises when a score names a language the store does not have (a typo would silently drop it).
    """
    if isinstance(scores, xr.DataArray):
        scores = {str(k): float(v) for k, v in zip(scores["language"].values, scores.values)}
    langs = [str(g) for g in languages]
    unknown = sorted(set(scores) - set(langs))
    if unknown:
        raise ValueError(f"scores given for language(s) {unknown} that are not in the routing store")
    vals = np.array([float(scores.get(g, np.nan)) for g in langs])
    return xr.DataArray(vals, dims=("language",), coords={"language": languages}, attrs={"long_name": "per-language score"})


def score_correlation(
    divergence: xr.DataArray, score: xr.DataArray, *, reference: str | None = None, layers: range | None = None
) -> xr.DataArray:
    """Correlation of mean middle-layer divergence with a per-language score (Bandarkar), dim statistic.

    `layers` are layer positions (default: the RISE middle zone); the reference language is left out
    (its divergence is 0 by construction).
    """
    pos = layers if layers is not None else depth_zones(divergence.sizes["layer"])["middle"]
    if len(pos) == 0:
        raise ValueError("no middle layers to average: the model has too few MoE layers for this correlation")
    mid = divergence.isel(layer=list(pos)).mean("layer")
    if reference is not None:
        mid = mid.where(mid["language"] != reference)
    stats = pair_correlation(mid.values, score.sel(language=mid["language"]).values)
    return xr.DataArray(
        [stats[s] for s in STATISTICS],
        dims=("statistic",),
        coords={"statistic": list(STATISTICS)},
        attrs={
            "long_name": "correlation of mean middle-layer divergence with the per-language score",
            "layers": [int(x) for x in divergence["layer"].values[list(pos)]],
        },
    )
