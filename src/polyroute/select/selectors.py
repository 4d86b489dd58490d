"""Selectors (METHODS section 5): routing statistics -> a subnetwork dict, through one registry.

Adding a selector is one function decorated with `@register(name, settings)`, naming the settings it
reads; their defaults come from the config schema (`polyroute.config.schema_defaults`): the
selector's own section of `selection.methods`, then `stats` (run-level statistics settings), then
`training.train_routers`; `languages` and `reference_language` default to None (all routed languages,
none). `select()` validates the method, the settings (unknown keys are errors), the target and the
routing store against the model before calling it, then counts the parameters the selection makes
trainable.

Each selector receives a `Context` and returns `Picked`. Choices documented here and tested:
- rise: candidates are experts the target routes to at least once (others get no gradient from
  target data, RISE Lemma 1); ties rank by (score desc, layer, expert).
- random: the same budget and the same per-zone counts as `rise` for that target, drawn uniformly
  from every expert of each zone with numpy's default_rng(seed).
- random-matched: the same, outside RISE's set, matched zone by zone on the target's summed
  activation frequency (its docstring says how); the achieved and RISE's sums are recorded.
- train_routers (where a selector accepts it): the routers of the layers that hold selected experts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from polyroute.config import schema_defaults
from polyroute.models.info import ModelInfo
from polyroute.select.zones import allocate, default_budget, normalise_split
from polyroute.stats.zones import rise_zones
from polyroute.stats.distributions import frequency
from polyroute.stats.experts import (
    EXCLUSIVE,
    SHARED,
    affinity,
    esft_gate_selection,
    expert_classes,
    language_experts_by_gap,
    rise_scores,
    shared_experts,
)

log = logging.getLogger(__name__)

Pair = tuple[int, int]


@dataclass(frozen=True)
class Context:
    """What a selector may read: the routing store, the target, resolved settings, the model."""

    method: str
    routing: xr.Dataset | None  # the routing store (count, tokens, gate_sum)
    target: str
    settings: Mapping[str, Any]
    info: ModelInfo
    languages: tuple[str, ...] = ()

    def counts(self) -> tuple[xr.DataArray, xr.DataArray]:
        """count (language, layer, expert) and tokens (language) over the configured languages."""
        assert self.routing is not None
        langs = list(self.languages)
        count = self.routing["count"].sel(language=langs).transpose("language", "layer", "expert")
        return count, self.routing["tokens"].sel(language=langs)

    def frequency(self) -> xr.DataArray:
        return frequency(*self.counts())

    def layer_window(self, key: str = "layers") -> list[int]:
        """The MoE layers named by setting `key` (None = all), checked against the model."""
        wanted = self.settings.get(key)
        if wanted is None:
            return list(self.info.moe_layers)
        bad = [x for x in wanted if x not in self.info.moe_layers]
        if bad or not wanted:
            raise ValueError(f"{self.method}.{key}={list(wanted)}: {bad or 'empty'} not MoE layers of the model {list(self.info.moe_layers)}")
        return sorted(set(int(x) for x in wanted))


@dataclass
class Picked:
    """A selector's answer; `derived` lands in the file's settings (e.g. the RISE zones)."""

    experts: list[Pair]
    budget: int | None = None
    train_routers: bool = False
    extra_modules: list[str] = field(default_factory=list)
    derived: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SelectorSpec:
    name: str
    func: Callable[[Context], Picked]
    settings: tuple[str, ...]  # the settings the selector reads, in the order its file records them
    needs_stats: bool
    borrows: Mapping[str, str]  # setting -> the method whose section of selection.methods holds it

    @property
    def stats_keys(self) -> tuple[str, ...]:
        """The run-level `stats` settings this selector reads."""
        return tuple(key for key in self.settings if key in schema_defaults("stats") and key not in self.own_keys)

    @property
    def own_keys(self) -> tuple[str, ...]:
        """The settings of the selector's own section of `selection.methods` in the config."""
        return tuple(schema_defaults("selection", "methods", self.name))

    @property
    def defaults(self) -> dict[str, Any]:
        """Every setting's default, from the config schema (see the module docstring)."""
        sources = [schema_defaults("selection", "methods", self.name), schema_defaults("stats"),
                   {"train_routers": schema_defaults("training")["train_routers"]}, LIBRARY_DEFAULTS]
        out = {}
        for key in self.settings:
            if key in self.borrows:
                out[key] = schema_defaults("selection", "methods", self.borrows[key])[key]
                continue
            out[key] = next(source[key] for source in sources if key in source)
        return out


REGISTRY: dict[str, SelectorSpec] = {}

# Settings outside the config (Python API only): the languages compared (None = every routed
# language) and the reference language (the workflow passes the config's).
LIBRARY_DEFAULTS: dict[str, Any] = {"languages": None, "reference_language": None}
# Settings every statistics-driven selector accepts.
STATS_COMMON = ("languages", "train_routers")


def register(name: str, settings: Sequence[str], needs_stats: bool = True,
             borrows: Mapping[str, str] | None = None) -> Callable:
    """Decorator adding a selector under `name` that reads `settings` (defaults from the schema)."""

    def deco(func: Callable[[Context], Picked]) -> Callable[[Context], Picked]:
        if name in REGISTRY:
            raise ValueError(f"selector {name!r} is registered twice")
        REGISTRY[name] = SelectorSpec(name, func, tuple(settings), needs_stats, dict(borrows or {}))
        REGISTRY[name].defaults  # noqa: B018 - a setting without a default anywhere fails at import
        return func

    return deco


def _mask_pairs(mask: xr.DataArray, layers: Sequence[int] | None = None) -> list[Pair]:
    """(layer, expert) pairs where a bool (layer, expert) mask is true, restricted to `layers`."""
    m = mask.transpose("layer", "expert")
    if layers is not None:
        m = m.sel(layer=list(layers))
    li, ei = np.nonzero(m.values)
    lv, ev = m["layer"].values, m["expert"].values
    return sorted((int(lv[a]), int(ev[b])) for a, b in zip(li, ei))


def _check_int(ctx: Context, key: str, minimum: int) -> int:
    value = ctx.settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{ctx.method}.{key}={value!r} must be an integer >= {minimum}")
    return int(value)


# ---------------------------------------------------------------- RISE and its random twin


@dataclass(frozen=True)
class _ZonePlan:
    budget: int
    zones: list[tuple[str, list[int]]]  # zone name, model layer indices
    candidates: list[list[tuple[float, int, int]]]  # per zone: (score, layer, expert), best first
    counts: list[int]

    def record(self) -> dict[str, Any]:
        return {n: {"layers": layers, "selected": c} for (n, layers), c in zip(self.zones, self.counts)}


def _rise_plan(ctx: Context, alpha: float) -> _ZonePlan:
    info, target = ctx.info, ctx.target
    total = info.total_experts
    layers = list(info.moe_layers)
    zone_pos = rise_zones(len(layers))  # over MoE layer positions; named by model layer index below
    zones = [(z.name, [layers[p] for p in z.positions]) for z in zone_pos]
    try:
        split = normalise_split(ctx.settings["split"])
    except ValueError as err:
        raise ValueError(f"{ctx.method}.{err}") from None
    if ctx.settings["budget"] is None:
        budget = default_budget(total, sum(1 for (_, ls), s in zip(zones, split) if ls and s > 0))
    else:
        budget = _check_int(ctx, "budget", 1)
    if budget > total:
        raise ValueError(f"{ctx.method}.budget={budget} exceeds the model's {total} experts")
    freq = ctx.frequency().sel(layer=layers).transpose("language", "layer", "expert")
    scores = rise_scores(freq, target, alpha)
    used = freq.sel(language=target).values > 0
    candidates = []
    for zone in zone_pos:
        score = scores["ovlp" if zone.name == "middle" else "spec"].values
        cand = [
            (float(score[p, e]), layers[p], int(e))
            for p in zone.positions
            for e in np.flatnonzero(used[p] & (score[p] > 0))
        ]
        candidates.append(sorted(cand, key=lambda c: (-c[0], c[1], c[2])))
    try:
        counts = allocate(budget, split, [len(c) for c in candidates], ctx.settings["budget_rounding"])
    except ValueError as err:
        raise ValueError(f"{ctx.method}.{err}") from None
    if sum(counts) < budget:
        log.warning("%s/%s: only %d experts eligible for a budget of %d", ctx.method, target, sum(counts), budget)
    return _ZonePlan(budget, zones, candidates, counts)


@register("rise", (*STATS_COMMON, "budget", "split", "budget_rounding", "alpha"))
def _rise(ctx: Context) -> Picked:
    """RISE tripartite: top Spec in shallow and deep zones, top Ovlp in the middle zone.

    Zones and per-zone budgets as the RISE authors' code computes them (Zheng et al., METHODS 5): zone
    bounds round(0.375 L), round(0.625 L) with Python's round; quotas floor(0.35 K), floor(0.25 K), the
    rest deep (budget_rounding="floor"; "largest-remainder" is polyroute's earlier rounding)."""
    plan = _rise_plan(ctx, float(ctx.settings["alpha"]))
    experts = [(l, e) for cand, n in zip(plan.candidates, plan.counts) for _, l, e in cand[:n]]
    return Picked(sorted(experts), plan.budget, bool(ctx.settings["train_routers"]), derived={"zones": plan.record()})


@register("random", (*STATS_COMMON, "budget", "split", "budget_rounding", "seed"),
          borrows={"budget": "rise", "split": "rise", "budget_rounding": "rise"})
def _random(ctx: Context) -> Picked:
    """Baseline: RISE's budget and per-zone counts, experts drawn uniformly within each zone."""
    # the zone counts depend on which scores are positive, which no alpha >= 0 changes
    plan = _rise_plan(ctx, schema_defaults("selection", "methods", "rise")["alpha"])
    rng = np.random.default_rng(_check_int(ctx, "seed", 0))
    experts: list[Pair] = []
    for (_, zone_layers), n in zip(plan.zones, plan.counts):
        pool = [(l, e) for l in zone_layers for e in range(ctx.info.num_experts)]
        experts += [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
    return Picked(sorted(experts), plan.budget, bool(ctx.settings["train_routers"]), derived={"zones": plan.record()})


# random-matched stops swapping once its set's usage is this close to RISE's (relative)
MATCH_TOLERANCE = 0.01


def _matched_draw(rng: np.random.Generator, pool: list[Pair], usage: Mapping[Pair, float], n: int,
                  goal: float) -> list[Pair]:
    """n experts of `pool` whose summed usage is close to `goal`: a seeded uniform draw, then random
    improving swaps (chosen <-> unchosen) until within MATCH_TOLERANCE or none improves."""
    chosen = [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
    taken = set(chosen)
    rest = [p for p in pool if p not in taken]
    total = sum(usage[p] for p in chosen)
    while abs(total - goal) > MATCH_TOLERANCE * goal:
        gap = abs(total - goal)
        better = [(i, j) for i, a in enumerate(chosen) for j, b in enumerate(rest)
                  if abs(total - usage[a] + usage[b] - goal) < gap]
        if not better:
            break
        i, j = better[rng.integers(len(better))]
        total += usage[rest[j]] - usage[chosen[i]]
        chosen[i], rest[j] = rest[j], chosen[i]
    return chosen


@register("random-matched", (*STATS_COMMON, "budget", "split", "budget_rounding", "alpha", "seed"),
          borrows={"budget": "rise", "split": "rise", "budget_rounding": "rise", "alpha": "rise"})
def _random_matched(ctx: Context) -> Picked:
    """Baseline: RISE's budget and per-zone counts, random experts outside RISE's set whose summed
    target activation frequency (a[g*, l, i] = count / T) matches RISE's set zone by zone.

    Plain `random` sets carry far less of the target's routing than RISE's (about 30x on the demo),
    so a RISE gain over them may be usage, not selection. Matching starts from a seeded uniform draw
    and makes random improving swaps until the zone's sum is within 1%, rather than keeping the best
    of many draws: RISE's sum sits in the far tail of uniform draws, which rarely reach it, whereas
    swaps get there while keeping much of the draw, so seeds give different sets. Where RISE took
    the zone's most used experts, no other set reaches its sum: the closest one found is kept and
    both sums are recorded. RISE's own experts are excluded, so the baseline
    never shares an expert with what it is compared against.
    """
    plan = _rise_plan(ctx, float(ctx.settings["alpha"]))
    rng = np.random.default_rng(_check_int(ctx, "seed", 0))
    freq = ctx.frequency().sel(language=ctx.target).transpose("layer", "expert")
    row = {int(l): freq.sel(layer=l).values for l in freq["layer"].values}
    experts: list[Pair] = []
    matched = {}
    for (name, zone_layers), cand, n in zip(plan.zones, plan.candidates, plan.counts):
        rise_set = {(l, e) for _, l, e in cand[:n]}
        pool = [(l, e) for l in zone_layers for e in range(ctx.info.num_experts) if (l, e) not in rise_set]
        usage = {(l, e): float(row[l][e]) for l in zone_layers for e in range(ctx.info.num_experts)}
        goal = sum(usage[p] for p in rise_set)
        picked = _matched_draw(rng, pool, usage, min(n, len(pool)), goal)
        matched[name] = {"target_share": goal, "share": sum(usage[p] for p in picked)}
        experts += picked
    return Picked(sorted(experts), plan.budget, bool(ctx.settings["train_routers"]),
                  derived={"zones": plan.record(), "matched": matched})


# ---------------------------------------------------------------- Chen, Khandelwal, ESFT

CHEN_SETTINGS = (*STATS_COMMON, "affinity_top_m", "exclusive_threshold", "layers")


def _chen(ctx: Context, code: int) -> Picked:
    W = affinity(*ctx.counts(), top_m=ctx.settings["affinity_top_m"])
    cls = expert_classes(W, theta=float(ctx.settings["exclusive_threshold"])).sel(language=ctx.target)
    experts = _mask_pairs(cls == code, ctx.layer_window())
    return Picked(experts, len(experts), bool(ctx.settings["train_routers"]))


@register("chen-exclusive", CHEN_SETTINGS)
def _chen_exclusive(ctx: Context) -> Picked:
    """Chen: experts exclusive to the target (W > theta)."""
    return _chen(ctx, EXCLUSIVE)


@register("chen-shared", CHEN_SETTINGS)
def _chen_shared(ctx: Context) -> Picked:
    """Chen: experts the target uses that are exclusive to no language."""
    return _chen(ctx, SHARED)


GAP_LANGUAGES = ("high-resource", "all")


def gap_owner(target: str, compared: Sequence[str], parents: Mapping[str, str], method: str = "last-layer") -> str:
    """The language whose experts `target` takes: its configured parent, else itself; it must be among
    the languages the gap rule compares (one-line error otherwise)."""
    owner = parents.get(target, target)
    if owner in compared:
        return owner
    if target not in parents:
        raise ValueError(f"{method}: target {target!r} is not among the compared languages {list(compared)} "
                         f"and has no parent in selection.methods.{method}.parents")
    raise ValueError(f"{method}.parents: {target!r} -> {owner!r}, which is not among the compared languages {list(compared)}")


@register("last-layer", (*STATS_COMMON, "n", "shared", "gap_languages", "parents", "language_gap", "shared_top",
                        "high_resource", "reference_language"))
def _last_layer(ctx: Context) -> Picked:
    """Khandelwal SEFT (shared=False) / SSFT (shared=True) in the last n MoE layers, as their code
    builds `selected_experts.json`: language experts by gap among the high-resource languages
    (gap_languages="high-resource"; "all" compares every language), a low-resource target taking its
    parent's (setting `parents`), plus for SSFT the top shared_top experts by mean activation over the
    high-resource languages."""
    n = _check_int(ctx, "n", 1)
    if n > len(ctx.info.moe_layers):
        raise ValueError(f"{ctx.method}.n={n} exceeds the model's {len(ctx.info.moe_layers)} MoE layers")
    layers = list(ctx.info.moe_layers[-n:])
    high = list(ctx.settings["high_resource"])
    if ctx.settings["gap_languages"] not in GAP_LANGUAGES:
        raise ValueError(f"{ctx.method}.gap_languages={ctx.settings['gap_languages']!r} must be one of {', '.join(GAP_LANGUAGES)}")
    if ctx.settings["gap_languages"] == "high-resource" and not high:
        raise ValueError(f"{ctx.method}.gap_languages='high-resource' needs stats.high_resource languages")
    compared = high if ctx.settings["gap_languages"] == "high-resource" else list(ctx.languages)
    owner = gap_owner(ctx.target, compared, ctx.settings["parents"] or {}, ctx.method)
    count, _ = ctx.counts()
    language_experts = language_experts_by_gap(count, float(ctx.settings["language_gap"]), compared)
    experts = set(_mask_pairs(language_experts.sel(language=owner), layers))
    if ctx.settings["shared"]:
        if not high and ctx.settings["reference_language"]:
            high = [ctx.settings["reference_language"]]
        if not high:
            raise ValueError(f"{ctx.method}.shared=true needs high_resource languages (or reference_language)")
        shared = shared_experts(ctx.frequency(), high, _check_int(ctx, "shared_top", 1))
        experts |= set(_mask_pairs(shared, layers))
    return Picked(sorted(experts), len(experts), bool(ctx.settings["train_routers"]), derived={"owner": owner})


@register("esft", (*STATS_COMMON, "top_p", "score", "layers"))
def _esft(ctx: Context) -> Picked:
    """ESFT: per layer, experts by decreasing mean gate weight (or token share) until top_p is covered."""
    if ctx.settings["score"] == "gate" and "gate_sum" not in ctx.routing:
        raise ValueError(f"{ctx.method}.score='gate' needs gate_sum in the routing store")
    count, tokens = ctx.counts()
    gate_sum = ctx.routing["gate_sum"].sel(language=list(ctx.languages)) if "gate_sum" in ctx.routing else None
    mask = esft_gate_selection(gate_sum, count, tokens, ctx.target, float(ctx.settings["top_p"]), ctx.settings["score"])
    experts = _mask_pairs(mask, ctx.layer_window())
    return Picked(experts, len(experts), bool(ctx.settings["train_routers"]))


# ---------------------------------------------------------------- baselines without statistics


@register("all-experts", ("layers", "train_routers"), needs_stats=False)
def _all_experts(ctx: Context) -> Picked:
    """Every expert of the given MoE layers (None = the last MoE layer)."""
    layers = ctx.layer_window() if ctx.settings["layers"] is not None else [ctx.info.moe_layers[-1]]
    experts = [(l, e) for l in layers for e in range(ctx.info.num_experts)]
    return Picked(experts, len(experts), bool(ctx.settings["train_routers"]))


@register("full", (), needs_stats=False)
def _full(ctx: Context) -> Picked:
    """Full fine-tuning: every parameter ("*" in extra_modules)."""
    experts = [(l, e) for l in ctx.info.moe_layers for e in range(ctx.info.num_experts)]
    return Picked(experts, len(experts), True, ["*"])


@register("none", (), needs_stats=False)
def _none(ctx: Context) -> Picked:
    """Nothing trainable: the base model as a subnetwork."""
    return Picked([], 0)


# ---------------------------------------------------------------- dispatch


def _resolve(method: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    if method not in REGISTRY:
        raise ValueError(f"unknown selection method {method!r}; known: {sorted(REGISTRY)}")
    defaults = REGISTRY[method].defaults
    unknown = sorted(set(settings or {}) - set(defaults))
    if unknown:
        raise ValueError(f"{method}: unknown setting(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **(settings or {})}


def _check_store(method: str, routing: xr.Dataset, info: ModelInfo) -> None:
    missing = [v for v in ("count", "tokens") if v not in routing]
    if missing:
        raise ValueError(f"{method}: routing store lacks {missing}")
    layers = [int(x) for x in routing["layer"].values]
    if layers != list(info.moe_layers):
        raise ValueError(f"{method}: routing store layers {layers} differ from the model's MoE layers {list(info.moe_layers)}")
    if routing.sizes["expert"] != info.num_experts:
        raise ValueError(f"{method}: routing store has {routing.sizes['expert']} experts per layer, the model {info.num_experts}")
    tokens = np.asarray(routing["tokens"].values)
    if (tokens <= 0).any():
        raise ValueError(f"{method}: language(s) {list(np.asarray(routing['language'].values)[tokens <= 0])} have no tokens")


def _languages(method: str, routing: xr.Dataset, target: str, wanted: Sequence[str] | None) -> tuple[str, ...]:
    known = [str(g) for g in routing["language"].values]
    langs = [str(g) for g in wanted] if wanted is not None else known
    bad = [g for g in langs if g not in known]
    if bad or len(set(langs)) != len(langs) or not langs:
        raise ValueError(f"{method}.languages={langs}: {bad or 'empty or repeated'}; routing languages are {known}")
    if target not in langs:
        raise ValueError(f"{method}: target {target!r} is not among the languages {langs}")
    return tuple(langs)


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def select(
    method: str,
    routing: xr.Dataset | None,
    *,
    target: str,
    settings: Mapping[str, Any] | None = None,
    model_info: ModelInfo,
) -> dict[str, Any]:
    """Run selector `method` for `target` and return the subnetwork dict (DESIGN.md contract).

    `routing` is the routing store (count, tokens, and gate_sum for esft) or None for the
    selectors that need none (all-experts, full, none). Settings not given take the selector's
    defaults (REGISTRY[method].defaults); unknown ones are errors.
    """
    resolved = _resolve(method, settings)
    spec = REGISTRY[method]
    if not isinstance(target, str) or not target:
        raise ValueError(f"{method}: target={target!r} must be a language code")
    languages: tuple[str, ...] = ()
    if routing is not None:
        _check_store(method, routing, model_info)
        languages = _languages(method, routing, target, resolved.get("languages"))
        if "languages" in resolved:
            resolved["languages"] = list(languages)
    elif spec.needs_stats:
        raise ValueError(f"{method}: needs the routing store (count, tokens)")
    picked = spec.func(Context(method, routing, target, resolved, model_info, languages))

    experts = sorted(set(picked.experts))
    if picked.extra_modules == ["*"]:
        trainable = model_info.total_params
    else:
        router_layers = len({l for l, _ in experts}) if picked.train_routers else 0
        trainable = model_info.trainable(len(experts), router_layers)
    out = {
        "method": method,
        "target": target,
        "model": model_info.model,
        "experts": [[l, e] for l, e in experts],
        "train_routers": bool(picked.train_routers),
        "extra_modules": list(picked.extra_modules),
        "budget": picked.budget,
        "params_trainable": int(trainable),
        "params_total": int(model_info.total_params),
        "settings": _jsonable({**resolved, **picked.derived}),
    }
    log.info(
        "%s/%s: %d experts, %d of %d parameters trainable (%.4f%%)",
        method, target, len(experts), trainable, model_info.total_params, 100.0 * trainable / model_info.total_params,
    )
    return out
