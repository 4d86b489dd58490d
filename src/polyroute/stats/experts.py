"""Expert scores and classes (METHODS section 4, plus the section 7 source-expert sets).

Pure functions over xarray DataArrays with dims (language, layer, expert), as in the routing store:
`count`, `gate_sum`, `tokens(language)`; activation frequency `a = count / tokens`. No torch.

Conventions chosen where the papers are silent (each is tested):
- an expert no language uses has specificity 0 and overlap 0 (it is neither specific nor shared);
- Chen's top-m filter keeps every expert tied with the m-th largest frequency (so a row may keep more
  than m), which makes W independent of expert numbering; zero frequencies are never "kept";
- rankings (shared, ESFT) break ties by the lower expert index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from polyroute.stats.distributions import frequency

DIMS = ("language", "layer", "expert")

# Expert class codes of the statistics store (`expert_class`).
UNUSED, SHARED, EXCLUSIVE = 0, 1, 2


def _as_lle(da: xr.DataArray, name: str) -> xr.DataArray:
    """Return `da` as float64 with dims (language, layer, expert), after checking it is finite and >= 0."""
    if set(da.dims) != set(DIMS):
        raise ValueError(f"{name} must have dims {DIMS}, got {tuple(da.dims)}")
    out = da.transpose(*DIMS).astype(np.float64)
    values = out.values
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    return out


def _check_languages(da: xr.DataArray, languages: Sequence[str], setting: str) -> None:
    known = [str(g) for g in da["language"].values]
    missing = [str(g) for g in languages if str(g) not in known]
    if missing:
        raise ValueError(f"{setting}: language(s) {missing} not among the routing languages {known}")


def _check_tokens(tokens: xr.DataArray) -> None:
    values = np.asarray(tokens.values)
    if (values <= 0).any():
        bad = [str(g) for g in np.asarray(tokens["language"].values)[values <= 0]]
        raise ValueError(f"tokens: language(s) {bad} have no tokens")


def _safe_ratio(num: xr.DataArray, den: xr.DataArray) -> xr.DataArray:
    """num / den, with 0 where den is 0 (no warnings, no NaN)."""
    return (num / den.where(den > 0)).fillna(0.0)


def specificity(freq: xr.DataArray, target: str) -> xr.DataArray:
    """RISE specificity S[l, i] = a[target, l, i] / abar[l, i], 0 where abar is 0.

    `abar` is the mean over every language in `freq` (subset `freq` to change the language set).
    """
    a = _as_lle(freq, "freq")
    _check_languages(a, [target], "target")
    out = _safe_ratio(a.sel(language=target, drop=True), a.mean("language"))
    out.attrs = {"long_name": "specificity", "target": str(target), "formula": "a[target] / mean_g a"}
    return out.rename("specificity")


def overlap(freq: xr.DataArray) -> xr.DataArray:
    """RISE overlap O[l, i] = 1 / (1 + CV), CV = std_g a / mean_g a (population std).

    O is 1 for an expert every language uses equally and falls towards 0 as use concentrates on
    few languages; an expert no language uses gets 0 (it is shared by nobody).
    """
    a = _as_lle(freq, "freq")
    mean = a.mean("language")
    cv = _safe_ratio(a.std("language", ddof=0), mean)
    out = xr.where(mean > 0, 1.0 / (1.0 + cv), 0.0)
    out.attrs = {"long_name": "overlap", "formula": "1 / (1 + std_g a / mean_g a), population std; 0 if unused"}
    return out.rename("overlap")


def rise_scores(freq: xr.DataArray, target: str, alpha: float) -> xr.Dataset:
    """RISE composite scores: spec = S (1 + alpha a[target]), ovlp = O (1 + alpha abar), dims (layer, expert)."""
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha={alpha!r} must be a finite number >= 0")
    a = _as_lle(freq, "freq")
    spec = specificity(a, target) * (1.0 + alpha * a.sel(language=target, drop=True))
    ovlp = overlap(a) * (1.0 + alpha * a.mean("language"))
    return xr.Dataset(
        {"spec": spec.rename("spec"), "ovlp": ovlp.rename("ovlp")},
        attrs={"target": str(target), "alpha": float(alpha)},
    )


def affinity(count: xr.DataArray, tokens: xr.DataArray, top_m: int = 15) -> xr.DataArray:
    """Chen's normalised affinity W[g, l, i] = f~[g, l, i] / sum_g' f~[g', l, i].

    f = count / tokens; f~ keeps, per (language, layer), the experts whose f is >= the m-th largest f
    of that row (ties at the m-th place are all kept) and > 0, and zeroes the rest. W is 0 for an
    expert no language keeps; otherwise it sums to 1 over languages.
    """
    if isinstance(top_m, bool) or not isinstance(top_m, (int, np.integer)) or top_m < 1:
        raise ValueError(f"top_m={top_m!r} must be an integer >= 1")
    _check_tokens(tokens)
    f = _as_lle(frequency(count, tokens), "count / tokens")
    values = f.values
    m = min(int(top_m), values.shape[-1])
    kth = -np.partition(-values, m - 1, axis=-1)[..., m - 1 : m]  # m-th largest per (g, l)
    kept = f.copy(data=np.where((values >= kth) & (values > 0), values, 0.0))
    out = _safe_ratio(kept, kept.sum("language"))
    out.attrs = {"long_name": "normalised affinity", "top_m": int(top_m), "ties": "all tied at the m-th place kept"}
    return out.rename("affinity")


def expert_classes(W: xr.DataArray, theta: float = 0.4) -> xr.DataArray:
    """Chen's expert classes per language: int8 (language, layer, expert).

    Reading of METHODS section 4: exclusivity is per language (W[g] > theta), sharedness is a property
    of the expert (used by some language, and W <= theta for every language). For language g:
      2 (exclusive): W[g, l, i] > theta;
      1 (shared):    g uses the expert (W[g] > 0) and no language has W > theta;
      0 (otherwise): g does not use it, or g uses it but it is exclusive to another language.
    So, per (layer, expert), the used experts split into shared ones and ones exclusive to at least one
    language; with theta < 0.5 an expert can be exclusive to two languages at once.
    """
    if not (0.0 <= theta < 1.0):
        raise ValueError(f"theta={theta!r} must lie in [0, 1)")
    w = _as_lle(W, "W")
    exclusive = w > theta
    shared_expert = (w > 0).any("language") & ~exclusive.any("language")
    cls = xr.where(exclusive, EXCLUSIVE, xr.where((w > 0) & shared_expert, SHARED, UNUSED)).astype(np.int8)
    cls.attrs = {"long_name": "expert class", "codes": "0 unused/other, 1 shared, 2 exclusive", "theta": float(theta)}
    return cls.rename("expert_class")


def language_experts_by_gap(count: xr.DataArray, gap: float = 0.01,
                            languages: Sequence[str] | None = None) -> xr.DataArray:
    """Khandelwal's language experts: bool (language, layer, expert) over `languages`, at most one
    language per expert (Khandelwal et al., `analysis/analysis.py` and README of their code).

    Each language's counts are normalised over the layer's experts, a_g(i) = count[g, l, i] /
    sum_i' count[g, l, i] (so a language's token total does not matter); an expert belongs to its top
    language when a_top1 - a_top2 >= gap among the compared `languages` (None = all; the authors
    compare the high-resource languages only). An exact tie at the top assigns nobody (their stable
    sort would give it to the first-listed language, which matters only at gap = 0).
    """
    if not np.isfinite(gap) or gap < 0:
        raise ValueError(f"gap={gap!r} must be a finite number >= 0")
    c = _as_lle(count, "count")
    if languages is not None:
        if not languages:
            raise ValueError("languages: give at least one language to compare")
        _check_languages(c, languages, "languages")
        c = c.sel(language=[str(g) for g in languages])
    share = _safe_ratio(c, c.sum("expert")).values
    if share.shape[0] == 1:
        top1, top2 = share[0], np.zeros_like(share[0])
    else:
        part = -np.partition(-share, 1, axis=0)
        top1, top2 = part[0], part[1]
    assigned = (top1 > top2) & (top1 - top2 >= gap)
    best = np.argmax(share, axis=0)
    out = (np.arange(share.shape[0])[:, None, None] == best[None]) & assigned[None]
    da = c.copy(data=out)
    da.attrs = {"long_name": "language expert (gap rule)", "gap": float(gap),
                "normalisation": "count / sum over the layer's experts, per language"}
    return da.rename("language_expert")


def _top_per_layer(scores: np.ndarray, n: int) -> np.ndarray:
    """Bool mask [L, E] of the n highest positive scores per layer; ties go to the lower expert index."""
    order = np.argsort(-scores, axis=-1, kind="stable")
    rank = np.argsort(order, axis=-1)  # each expert's place in its layer's ranking
    return (rank < n) & (scores > 0)


def shared_experts(freq: xr.DataArray, high_resource: Sequence[str], s: int = 5) -> xr.DataArray:
    """Khandelwal's shared experts: per layer, the top `s` by mean frequency over the high-resource languages.

    Only experts with a positive mean qualify; ties go to the lower expert index. bool (layer, expert).
    """
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
        raise ValueError(f"shared_top={s!r} must be an integer >= 1")
    if not high_resource:
        raise ValueError("high_resource: give at least one high-resource language")
    a = _as_lle(freq, "freq")
    _check_languages(a, high_resource, "high_resource")
    mean = a.sel(language=[str(g) for g in high_resource]).mean("language")
    out = mean.copy(data=_top_per_layer(mean.values, int(s)))
    out.attrs = {"long_name": "shared expert", "shared_top": int(s), "high_resource": [str(g) for g in high_resource]}
    return out.rename("shared_expert")


def esft_gate_selection(
    gate_sum: xr.DataArray | None,
    count: xr.DataArray,
    tokens: xr.DataArray,
    target: str,
    top_p: float = 0.2,
    score: str = "gate",
) -> xr.DataArray:
    """ESFT selection: per layer, experts by decreasing score on the target until their share reaches top_p.

    score "gate" (ESFT-Gate): mean gate weight gate_sum / tokens; "token" (ESFT-Token): selection
    ratio count / tokens (gate_sum may then be None). Shares are normalised per layer; the expert whose share makes the cumulative
    sum reach top_p is included (1e-12 slack for float sums). bool (layer, expert).
    """
    if not (0.0 < top_p <= 1.0):
        raise ValueError(f"top_p={top_p!r} must lie in (0, 1]")
    if score not in ("gate", "token"):
        raise ValueError(f"score={score!r} must be 'gate' or 'token'")
    if score == "gate" and gate_sum is None:
        raise ValueError("score='gate' needs gate_sum")
    _check_tokens(tokens)
    source = _as_lle(gate_sum if score == "gate" else count, "gate_sum" if score == "gate" else "count")
    _check_languages(source, [target], "target")
    values = (source.sel(language=target, drop=True) / float(tokens.sel(language=target))).values
    total = values.sum(axis=-1, keepdims=True)
    share = np.divide(values, total, out=np.zeros_like(values), where=total > 0)
    order = np.argsort(-share, axis=-1, kind="stable")
    sorted_share = np.take_along_axis(share, order, axis=-1)
    before = np.cumsum(sorted_share, axis=-1) - sorted_share  # cumulative share before each expert
    take_sorted = (before < top_p - 1e-12) & (sorted_share > 0)
    mask = np.zeros_like(take_sorted)
    np.put_along_axis(mask, order, take_sorted, axis=-1)
    out = xr.DataArray(
        mask, dims=("layer", "expert"), coords={"layer": source["layer"], "expert": source["expert"]}
    )
    out.attrs = {"long_name": "ESFT selection", "top_p": float(top_p), "score": score, "target": str(target)}
    return out.rename("esft_expert")


def chen_shared_source_experts(W: xr.DataArray, source: str, low: float = 0.3, high: float = 0.7) -> xr.DataArray:
    """Chen's steering set (METHODS section 7): experts with low < W[source, l, i] < high. bool (layer, expert)."""
    if not (0.0 <= low < high <= 1.0):
        raise ValueError(f"need 0 <= low < high <= 1, got low={low!r}, high={high!r}")
    w = _as_lle(W, "W")
    _check_languages(w, [source], "source")
    ws = w.sel(language=source, drop=True)
    out = (ws > low) & (ws < high)
    out.attrs = {"long_name": "shared source expert", "source": str(source), "low": float(low), "high": float(high)}
    return out.rename("source_expert")
