"""Routing statistics of several models or checkpoints side by side, on a common relative-depth axis.

Bandarkar et al. compare the divergence U-shape of several models, whose layer counts differ, on
relative depth; Khandelwal et al. follow specialisation, JSD between languages and language experts
through the checkpoints of one training run. `compare_members` puts every member's per-layer
statistics (each member a statistics store of `polyroute.stats.compute.compute_stats`) on one axis:

- relative depth of a MoE layer = its position among the model's MoE layers / (L - 1): 0 the first
  MoE layer, 1 the last (0 for a one-layer model); the axis is the union of the members' depths
  (rounded to 1e-6), and `layer(member, relative_depth)` keeps each member's model layer index
  (-1 where a member has no layer at that depth, whose values are NaN).
- statistics that depend on the language set (specialisation, Chen's affinity and expert classes)
  are recomputed on the members' common languages from the stored frequency and tokens; per-language
  ones (divergence, JSD, entropy) are taken as stored for those languages.
- comparability: members must share the text (dataset, split), the reference language, the routing
  distribution, the divergence input (METHODS 2: used weights, counts or softmax), the log base and the
  affinity thresholds, else `IncomparableMembers` (one line).
  What stays comparable is marked: D = JSD / (ln E - mean entropy) (Bandarkar) grows without bound
  as routing nears uniform, so D levels compare only between members of alike routing entropy (attr
  `divergence_comparable`: mean H / ln E within `ENTROPY_TOLERANCE`; an untrained model's D exceeds a
  trained one's although its JSD is lower); JSD levels only between members of the same (E, k) (attr
  `jsd_comparable`); expert counts come also as shares of E (`*_share`; attr `counts_comparable`
  says whether the counts themselves are).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from polyroute.stats.correlation import pair_correlation
from polyroute.stats.experts import EXCLUSIVE, SHARED, affinity, expert_classes
from polyroute.stats.information import specialisation
from polyroute.stats.zones import depth_zones

__all__ = ["IncomparableMembers", "Member", "check_comparable", "compare_members", "relative_depth", "fisher_interval", "comparison_tables"]

MODEL, UNTRAINED = "model", "untrained"
# attrs of the statistics stores that must agree for their statistics to be compared at all
_SAME = ("dataset", "split", "reference_language", "distribution_source", "divergence_source", "log_base")
_DEPTH_DECIMALS = 6
_PER_LANGUAGE = ("divergence", "jsd", "entropy_normalised")
_NEEDED = ("frequency", "tokens", "similarity", *_PER_LANGUAGE)
# members whose mean normalised routing entropy differs by more than this have D levels apart
ENTROPY_TOLERANCE = 0.05


class IncomparableMembers(ValueError):
    """Members whose statistics cannot be compared, said in one line."""


@dataclass(frozen=True)
class Member:
    """One compared statistics store and what it is: a model (a run's model or one of its revisions)
    or the run's architecture untrained (a noise-floor seed)."""

    name: str
    stats: xr.Dataset
    run: str = ""
    revision: str = ""  # the revision's label; "" for a run's own model
    step: float | None = None  # training step of the checkpoint, when known
    tokens: float | None = None  # training tokens seen, when known
    kind: str = MODEL


def relative_depth(n_layers: int) -> np.ndarray:
    """Relative depth of each of `n_layers` MoE layers: position / (n - 1), rounded to 1e-6."""
    if n_layers < 1:
        raise ValueError(f"n_layers={n_layers!r} must be >= 1")
    if n_layers == 1:
        return np.zeros(1)
    return np.round(np.arange(n_layers) / (n_layers - 1), _DEPTH_DECIMALS)


def fisher_interval(r: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of a Pearson r from n pairs (Fisher z); NaN when n < 4 or r is NaN."""
    from scipy.stats import norm

    if not np.isfinite(r) or n < 4:
        return float("nan"), float("nan")
    z, half = math.atanh(min(max(r, -1 + 1e-12), 1 - 1e-12)), norm.ppf(0.5 + level / 2) / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def _attr(stats: xr.Dataset, key: str) -> str:
    return str(stats.attrs.get(key, ""))


def check_comparable(members: Sequence[Member]) -> list[str]:
    """The common languages of comparable members (the first member's order), or one line why not."""
    if len(members) < 2:
        raise IncomparableMembers(f"a comparison needs at least two members, got {len(members)}")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise IncomparableMembers(f"member {twice!r} is named twice")
    first = members[0]
    for member in members:
        missing = [v for v in _NEEDED if v not in member.stats.variables]
        if missing:
            raise IncomparableMembers(f"member {member.name!r}: its statistics lack {missing}")
        for key in (*_SAME, "thresholds"):
            if _attr(member.stats, key) != _attr(first.stats, key):
                raise IncomparableMembers(
                    f"member {member.name!r} has {key} {_attr(member.stats, key)!r}, member {first.name!r} "
                    f"{_attr(first.stats, key)!r}: their statistics are not comparable")
    reference = _attr(first.stats, "reference_language")
    common = [str(g) for g in first.stats["language"].values
              if all(str(g) in set(map(str, m.stats["language"].values)) for m in members)]
    if reference not in common or len(common) < 2:
        raise IncomparableMembers(f"the members share the languages {common}: a comparison needs the reference "
                                  f"{reference!r} and at least one other")
    return common


def _script(code: str) -> str:
    return code.split("_")[-1]


def _pair_means(similarity: xr.DataArray, languages: list[str]) -> dict[str, xr.DataArray]:
    """Mean JSD (nats) between distinct languages per layer: over all pairs, same-script pairs and
    pairs of different scripts (NaN where there are none), from similarity = 1 - JSD / ln 2."""
    jsd = (1.0 - similarity.sel(language=languages, language_b=languages)) * np.log(2.0)
    groups = {"jsd_between": lambda a, b: a != b,
              "jsd_same_script": lambda a, b: a != b and _script(a) == _script(b),
              "jsd_cross_script": lambda a, b: _script(a) != _script(b)}
    out = {}
    for name, keep in groups.items():
        mask = xr.DataArray([[keep(a, b) for b in languages] for a in languages],
                            dims=("language", "language_b"), coords={"language": languages, "language_b": languages})
        out[name] = jsd.where(mask).mean(("language", "language_b"))  # NaN where no pair qualifies
    return out


def _member_layers(member: Member, languages: list[str], reference: str) -> xr.Dataset:
    """The member's per-layer statistics on the common languages, dims (language, layer) and (layer)."""
    stats = member.stats.sel(language=languages)
    others = [g for g in languages if g != reference]
    frequency, tokens = stats["frequency"].load(), stats["tokens"].load()
    count = np.rint(frequency * tokens)  # the store keeps count / tokens; counts are integers
    thresholds = dict(stats.attrs.get("thresholds") or {})
    w = affinity(count, tokens, top_m=int(thresholds.get("top_m", 15)))
    classes = expert_classes(w, theta=float(thresholds.get("theta", 0.4)))
    experts = classes.sizes["expert"]
    exclusive_any = (classes == EXCLUSIVE).any("language").sum("expert")
    shared_any = (classes == SHARED).any("language").sum("expert")
    out = xr.Dataset({name: stats[name].load() for name in _PER_LANGUAGE})
    if "divergence_parallel" in stats:
        out["divergence_parallel"] = stats["divergence_parallel"].load()
    out["exclusive"] = (classes == EXCLUSIVE).sum("expert")
    out["divergence_mean"] = out["divergence"].sel(language=others).mean("language")
    out["jsd_mean"] = out["jsd"].sel(language=others).mean("language")
    out["entropy_normalised_mean"] = out["entropy_normalised"].mean("language")
    out["specialisation"] = specialisation(count)
    out["exclusive_experts"] = exclusive_any
    out["shared_experts"] = shared_any
    out["exclusive_share"] = exclusive_any / experts
    out["shared_experts_share"] = shared_any / experts
    for name, values in _pair_means(stats["similarity"].load(), languages).items():
        out[name] = values
    return out.drop_vars([c for c in out.coords if c not in ("language", "layer")])


def _on_depth(per_member: list[xr.Dataset], depth_of: list[np.ndarray], depths: np.ndarray, name: str) -> np.ndarray:
    """Stack one variable of every member onto the union depth axis (NaN where a member has no layer)."""
    first = per_member[0][name]
    lead = [first.sizes[d] for d in first.dims if d != "layer"]
    out = np.full((len(per_member), *lead, len(depths)), np.nan)
    for m, (data, own) in enumerate(zip(per_member, depth_of)):
        values = data[name].transpose(*[d for d in first.dims if d != "layer"], "layer").values
        out[m][..., np.searchsorted(depths, own)] = values
    return out


def _correlation(member: Member, languages: list[str], reference: str) -> dict[str, float]:
    """Bandarkar's correlation of mean middle-layer D with the member's per-language score, with the
    95% Fisher interval of Pearson's r (NaN without scores)."""
    keys = ("pearson_r", "pearson_lo", "pearson_hi", "pearson_p", "spearman_rho", "spearman_p", "n")
    if "score" not in member.stats:
        return dict.fromkeys(keys, float("nan")) | {"n": 0.0}
    divergence = member.stats["divergence"].sel(language=languages).load()
    # a model too shallow for a middle zone (4 MoE layers under half-to-even rounding) uses every layer,
    # as the divergence figure does
    middle = list(depth_zones(divergence.sizes["layer"])["middle"]) or list(range(divergence.sizes["layer"]))
    others = [g for g in languages if g != reference]
    mid = divergence.isel(layer=middle).mean("layer").sel(language=others)
    result = pair_correlation(mid.values, member.stats["score"].sel(language=others).values)
    lo, hi = fisher_interval(result["pearson_r"], result["n"])
    return {key: result.get(key, float("nan")) for key in keys} | {"pearson_lo": lo, "pearson_hi": hi}


def compare_members(members: Sequence[Member]) -> xr.Dataset:
    """Every member's per-layer statistics on the union relative-depth axis, one labelled Dataset.

    Dims: member, language (the common languages), relative_depth, statistic (of the correlation).
    Coordinates per member: run, revision, step, tokens, kind, model, num_experts, top_k, moe_layers;
    per (member, relative_depth): layer (model layer index, -1 where absent).
    """
    languages = check_comparable(members)
    reference = _attr(members[0].stats, "reference_language")
    per_member = [_member_layers(m, languages, reference) for m in members]
    depth_of = [relative_depth(d.sizes["layer"]) for d in per_member]
    depths = np.unique(np.concatenate(depth_of))
    names = [m.name for m in members]
    variables = {}
    for name, first in per_member[0].data_vars.items():
        if not all(name in d for d in per_member):
            continue  # e.g. divergence_parallel, only when every member has parallel text
        dims = ("member", *[d for d in first.dims if d != "layer"], "relative_depth")
        variables[name] = (dims, _on_depth(per_member, depth_of, depths, name), first.attrs)
    layer = np.full((len(members), len(depths)), -1, dtype=np.int64)
    for m, (data, own) in enumerate(zip(per_member, depth_of)):
        layer[m, np.searchsorted(depths, own)] = data["layer"].values
    correlations = [_correlation(m, languages, reference) for m in members]
    statistics = list(correlations[0])
    variables["score_correlation"] = (("member", "statistic"),
                                      np.array([[c[s] for s in statistics] for c in correlations], dtype=float))
    variables["score"] = (("member", "language"), np.array(
        [m.stats["score"].sel(language=languages).values if "score" in m.stats else np.full(len(languages), np.nan)
         for m in members], dtype=float))
    experts = [int(m.stats.attrs.get("num_experts", -1)) for m in members]
    top_k = [int(m.stats.attrs.get("top_k", -1)) for m in members]
    coords = {
        "member": names, "language": languages, "relative_depth": depths, "statistic": statistics,
        "layer": (("member", "relative_depth"), layer),
        "run": ("member", [m.run for m in members]),
        "revision": ("member", [m.revision for m in members]),
        "step": ("member", [np.nan if m.step is None else float(m.step) for m in members]),
        "tokens": ("member", [np.nan if m.tokens is None else float(m.tokens) for m in members]),
        "kind": ("member", [m.kind for m in members]),
        "model": ("member", [_attr(m.stats, "model") for m in members]),
        "num_experts": ("member", experts),
        "top_k": ("member", top_k),
        "moe_layers": ("member", [d.sizes["layer"] for d in per_member]),
    }
    same_shape = len(set(zip(experts, top_k))) == 1
    entropy = np.nanmean(variables["entropy_normalised_mean"][1], axis=1)
    coords["entropy_normalised_overall"] = ("member", entropy)
    first = members[0].stats.attrs
    return xr.Dataset(variables, coords=coords, attrs={
        **{key: _plain(first[key]) for key in (*_SAME, "thresholds") if key in first},
        "relative_depth": "MoE layer position / (number of MoE layers - 1); 0 = first MoE layer, 1 = last",
        "languages_note": "common languages of all members; specialisation and expert classes recomputed on them",
        "jsd_units": "nats",
        "jsd_comparable": int(same_shape),
        "divergence_comparable": int(np.ptp(entropy) <= ENTROPY_TOLERANCE),
        "counts_comparable": int(len(set(experts)) == 1),
        "divergence_note": f"D = JSD / (ln E - mean entropy) (Bandarkar): its levels compare only between members "
                           f"whose mean H / ln E (entropy_normalised_overall) is within {ENTROPY_TOLERANCE}",
        "correlation_note": "mean D over the RISE middle zone (every layer where it is empty) vs score, "
                            "non-reference languages; "
                            "95% interval of Pearson r by Fisher z",
    })


def _plain(v: object) -> object:
    return v.item() if isinstance(v, np.generic) else v


def comparison_tables(comparison: xr.Dataset) -> dict[str, pd.DataFrame]:
    """Long tables of a comparison (name -> frame): members, layer, language_layer, score_correlation."""
    member_coords = [c for c in comparison.coords if comparison[c].dims == ("member",) and c != "member"]
    members = comparison[member_coords].to_dataframe().reset_index()[["member", *member_coords]]
    per_layer = [v for v in comparison.data_vars if comparison[v].dims == ("member", "relative_depth")]
    per_language = [v for v in comparison.data_vars if comparison[v].dims == ("member", "language", "relative_depth")]
    layer = comparison[per_layer].to_dataframe().reset_index()
    language_layer = comparison[per_language].to_dataframe().reset_index()
    keep = ["member", "relative_depth", "layer"]
    layer = layer[layer["layer"] >= 0][keep + per_layer]
    language_layer = language_layer[language_layer["layer"] >= 0][keep + ["language"] + per_language]
    correlation = comparison["score_correlation"].to_pandas().reset_index()
    return {"members": members, "layer": layer.reset_index(drop=True),
            "language_layer": language_layer.reset_index(drop=True), "score_correlation": correlation}
