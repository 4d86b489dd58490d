"""The `interventions` config block: named experiments, their checks, and the evaluation variants they
make (`steer-<name>`, `mask-<name>`, one per strength of a sweep). No torch.

An experiment: `kind` (mask | soft | hard | affinity), an expert-set recipe `experts`
(bandarkar-task | chen-shared | chen-exclusive | list), a layer `window` (a name of
expert_sets.WINDOWS or [start, stop) in 48-layer units) or explicit model `layers`, a `strength` or a
sweep of them, the `languages` it is evaluated on, and the recipe's settings (`language`, `tau`,
`low`, `high`, `sources`, `top_m`, `theta`, `list`, `scores`).

chen-shared follows Chen et al.'s steering scripts: W normalised over the source languages only
(`sources`, default en and zh; "all" = every run language, polyroute's earlier convention), each
keeping its top `top_m` experts per layer (20 for steering, clipped to the model's experts; masking
and the statistics use stats.affinity_top_m, 15), experts with low < W_language < high, coefficient
s = W_language.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from polyroute.interventions.expert_sets import CHEN_STEERING_SOURCES, CHEN_STEERING_TOP_M
from polyroute.interventions.kinds import DEFAULT_STRENGTH, TAKES_STRENGTH, VARIANT_PREFIX

RECIPES = ("bandarkar-task", "chen-shared", "chen-exclusive", "list")
DEFAULTS = {"window": "steer", "tau": 0.3, "low": 0.3, "high": 0.7, "sources": list(CHEN_STEERING_SOURCES),
            "top_m": CHEN_STEERING_TOP_M}


@dataclass(frozen=True)
class Experiment:
    name: str
    kind: str
    experts: str  # the recipe
    language: str  # whose routing makes the set: English (task), the source (shared), the masked language
    window: str | list[int]
    layers: list[int] | None
    strengths: list[float | None]  # [None] for kinds without strength
    languages: list[str]  # evaluated on
    settings: dict[str, Any] = field(default_factory=dict)  # tau / low, high / list, scores

    @property
    def prefix(self) -> str:
        return VARIANT_PREFIX[self.kind]


@dataclass(frozen=True)
class Variant:
    """One evaluation variant of an experiment: its name, the experiment, the strength to use."""

    name: str
    experiment: str
    strength: float | None


def _fail(name: str, key: str, message: str) -> None:
    where = f"interventions.experiments.{name}" + (f".{key}" if key else "")
    raise ValueError(f"config error: '{where}': {message}")


def experiment(name: str, raw: Mapping[str, Any], run_config: Mapping[str, Any]) -> Experiment:
    """One experiment with its defaults filled in, checked against the rest of the config (not the model)."""
    kind, recipe = raw["kind"], raw["experts"]
    langs = list(run_config["languages"])
    if "window" in raw and raw.get("layers") is not None:
        _fail(name, "layers", "give a window or layers, not both")
    strength = raw.get("strength")
    if kind not in TAKES_STRENGTH and strength is not None:
        _fail(name, "strength", f"{kind} takes no strength")
    strengths = ([DEFAULT_STRENGTH.get(kind)] if strength is None
                 else [float(s) for s in (strength if isinstance(strength, list) else [strength])])
    if recipe == "list" and not raw.get("list"):
        _fail(name, "list", "experts: list needs the (layer, expert) pairs in 'list'")
    if recipe != "list" and ("list" in raw or "scores" in raw):
        _fail(name, "list" if "list" in raw else "scores", f"only 'experts: list' takes explicit experts or scores")
    for key in ("sources", "top_m"):
        if recipe != "chen-shared" and key in raw:
            _fail(name, key, "only 'experts: chen-shared' takes steering sources and top_m")
    if kind == "affinity" and recipe not in ("chen-shared", "list"):
        _fail(name, "experts", f"affinity needs per-expert scores: use chen-shared (s = W_src) or list with scores")
    if kind == "affinity" and recipe == "list" and len(raw.get("scores") or []) != len(raw["list"]):
        _fail(name, "scores", f"affinity with a list needs one score per listed expert")
    language = raw.get("language")
    if language is None:
        if recipe == "chen-exclusive":
            _fail(name, "language", "chen-exclusive needs the language whose exclusive experts are masked")
        language = run_config["reference_language"]
    if language not in langs:
        _fail(name, "language", f"{language!r} is not in 'languages'")
    targets = raw.get("languages") or langs
    for code in targets:
        if code not in langs:
            _fail(name, "languages", f"{code!r} is not in 'languages'")
    if recipe == "bandarkar-task" and not (run_config.get("interventions") or {}).get("task_data"):
        _fail(name, "experts", "bandarkar-task needs 'interventions.task_data' (English in-task text to route)")
    if recipe == "bandarkar-task":
        settings = {"tau": float(raw.get("tau", DEFAULTS["tau"]))}
    elif recipe == "chen-shared":
        settings = {"low": float(raw.get("low", DEFAULTS["low"])), "high": float(raw.get("high", DEFAULTS["high"])),
                    "sources": _sources(name, raw.get("sources", DEFAULTS["sources"]), language, langs),
                    "top_m": int(raw.get("top_m", DEFAULTS["top_m"]))}
    elif recipe == "chen-exclusive":
        settings = {"theta": raw.get("theta")}  # None: stats.exclusive_threshold
    else:
        settings = {"list": [list(map(int, p)) for p in raw.get("list") or []], "scores": raw.get("scores")}
    if recipe == "chen-shared" and not settings["low"] < settings["high"]:
        _fail(name, "low", f"low={settings['low']} must be below high={settings['high']}")
    return Experiment(name=name, kind=kind, experts=recipe, language=language,
                      window=raw.get("window", DEFAULTS["window"]), layers=raw.get("layers"),
                      strengths=strengths, languages=list(targets), settings=settings)


def _sources(name: str, sources: str | Sequence[str], language: str, langs: Sequence[str]) -> list[str] | None:
    """The languages chen-shared normalises W over: a list (checked), or None for "all"."""
    if sources == "all":
        return None
    for code in sources:
        if code not in langs:
            _fail(name, "sources", f"{code!r} is not in 'languages'")
    if language not in sources:
        _fail(name, "sources", f"the steering source {language!r} (key 'language') is not among {list(sources)}")
    return list(sources)


def experiments(run_config: Mapping[str, Any]) -> dict[str, Experiment]:
    """Every experiment of a validated config, by name. An experiment set to null is dropped: a
    configs/*.yaml removes that way one it inherits from the embedded default config.yaml."""
    block = run_config.get("interventions") or {}
    return {name: experiment(name, raw, run_config) for name, raw in (block.get("experiments") or {}).items()
            if raw is not None}


def variants(run_config: Mapping[str, Any]) -> dict[str, Variant]:
    """The evaluation variants: `<prefix>-<name>`, or `<prefix>-<name>-<strength>` for each value of a sweep."""
    out = {}
    for exp in experiments(run_config).values():
        for strength in exp.strengths:
            name = f"{exp.prefix}-{exp.name}" if len(exp.strengths) == 1 else f"{exp.prefix}-{exp.name}-{strength:g}"
            if name in out:
                raise ValueError(f"config error: 'interventions.experiments.{exp.name}': variant {name!r} is made twice")
            out[name] = Variant(name, exp.name, strength)
    return out


def check_config(run_config: Mapping[str, Any]) -> None:
    """The checks the schema cannot express (ValueError, one line naming the key)."""
    variants(run_config)
    task = (run_config.get("interventions") or {}).get("task_data")
    if task is not None:
        from polyroute import data as datasets_registry

        key = "config error: 'interventions.task_data"
        if task["name"] not in datasets_registry.DATASETS:
            raise ValueError(f"{key}.name' = {task['name']!r} is not a known dataset ({', '.join(sorted(datasets_registry.DATASETS))})")
        spec = datasets_registry.get_spec(task["name"])
        try:
            spec.check_split(task.get("split"))
            spec.dataset_code(run_config["reference_language"])
        except ValueError as exc:
            raise ValueError(f"{key}': {exc}") from None


def check_against_model(run_config: Mapping[str, Any], moe_layers: Sequence[int], num_experts: int, top_k: int) -> None:
    """Layers and expert ids the model must have; hard / mask lists the top-k can honour."""
    for exp in experiments(run_config).values():
        for layer in exp.layers or []:
            if layer not in moe_layers:
                _fail(exp.name, "layers", f"layer {layer} is not an MoE layer of the model (MoE layers: {list(moe_layers)})")
        per_layer: dict[int, int] = {}
        for layer, expert in exp.settings.get("list") or []:
            if layer not in moe_layers:
                _fail(exp.name, "list", f"layer {layer} is not an MoE layer of the model (MoE layers: {list(moe_layers)})")
            if not 0 <= expert < num_experts:
                _fail(exp.name, "list", f"expert {expert} is outside 0..{num_experts - 1}")
            per_layer[layer] = per_layer.get(layer, 0) + 1
        most = max(per_layer.values(), default=0)
        if exp.kind == "hard" and most > top_k:
            _fail(exp.name, "list", f"hard forces {most} experts of one layer into a top-{top_k}")
        if exp.kind == "mask" and most > num_experts - top_k:
            _fail(exp.name, "list", f"masking {most} of {num_experts} experts in one layer leaves fewer than k={top_k}")
