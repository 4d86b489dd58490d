"""The run configuration: schema validation, defaults, semantic checks and a typed view.

The JSON Schema in workflow/schemas/config.schema.yaml is the single source of truth for keys,
types and defaults; the dataclasses below mirror it (a test checks that both agree). Every error
is one line that names the offending key, raised before any expensive work.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration problem, reported as one line that names the key."""


@dataclass(frozen=True)
class ModelConfig:
    id: str
    revision: str | None = None
    dtype: str = "auto"
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    experts_implementation: str | None = None


@dataclass(frozen=True)
class DatasetRef:
    name: str
    split: str | None = None


@dataclass(frozen=True)
class DatasetsConfig:
    routing: DatasetRef
    training: DatasetRef | None = None
    local: str | None = None
    max_items: int | None = None


@dataclass(frozen=True)
class ExtractionConfig:
    shards: int = 1
    batch_tokens: int = 16384
    max_length: int = 512
    per_token: bool = False


@dataclass(frozen=True)
class StatsConfig:
    log_base: str | int = "e"
    distribution: str = "hard"
    affinity_top_m: int = 15
    exclusive_threshold: float = 0.4
    language_gap: float = 0.01
    shared_top: int = 5
    high_resource: list[str] = field(default_factory=list)
    scores: str | None = None
    heatmap_layers: list[int] | None = None


@dataclass(frozen=True)
class SelectionConfig:
    targets: list[str] = field(default_factory=list)
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingConfig:
    methods: list[str] = field(default_factory=list)
    zero_stage: int = 2
    lr: float = 2.0e-5
    epochs: int = 3
    max_length: int = 512
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    micro_batch_size: int = 8
    gradient_accumulation: int = 1
    checkpoint_every: int = 50
    train_routers: bool = False
    enforce_routing: bool = False
    gradient_checkpointing: bool = False
    seed: int = 0
    gpus: int = 1


@dataclass(frozen=True)
class InterventionsConfig:
    task_data: DatasetRef | None = None
    shift_items: int = 50
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    run: str
    model: ModelConfig
    languages: list[str]
    reference_language: str
    datasets: DatasetsConfig
    extraction: ExtractionConfig = field(default_factory=ExtractionConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    interventions: InterventionsConfig = field(default_factory=InterventionsConfig)


def load_schema(path: Path | str = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _fill_defaults(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> None:
    """Insert the schema's defaults into nested objects, in place (after validation)."""
    schema = _resolve(schema, root)
    if not isinstance(value, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _fill_defaults(value[key], sub, root)


def _one_line(error: jsonschema.ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    where = ".".join(path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"config error: unknown key '{'.'.join(path + extra[:1])}' (allowed here: {', '.join(allowed)})"
    if error.validator == "required":
        return f"config error: '{where}' is missing a required key: {error.message.split(' is ')[0]}"
    if error.validator == "pattern":
        return f"config error: '{where}' = {error.instance!r} does not have the expected form {error.validator_value!r}"
    return f"config error: '{where}': {error.message}"


def validate(raw: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate a raw config against the schema and return a copy with every default filled in."""
    schema = schema if schema is not None else load_schema()
    data = copy.deepcopy(dict(raw))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if errors:
        raise ConfigError(_one_line(errors[0]))
    _fill_defaults(data, schema, schema)
    _check_semantics(data)
    return data


def _check_semantics(data: Mapping[str, Any]) -> None:
    """Checks the schema cannot express: language codes, cross-references between keys, datasets."""
    from polyroute import data as datasets_registry
    from polyroute import languages

    def check_language(code: str, key: str) -> None:
        try:
            languages.validate_code(code)
        except ValueError as exc:
            raise ConfigError(f"config error: '{key}': {exc}") from None

    langs = data["languages"]
    for i, code in enumerate(langs):
        check_language(code, f"languages.{i}")
    if data["reference_language"] not in langs:
        raise ConfigError(
            f"config error: 'reference_language' = {data['reference_language']!r} is not in 'languages'"
        )
    for key, codes in (("stats.high_resource", data["stats"]["high_resource"]), ("selection.targets", data["selection"]["targets"])):
        for code in codes:
            if code not in langs:
                raise ConfigError(f"config error: '{key}' has {code!r}, which is not in 'languages'")
    parent = data["selection"]["methods"].get("last-layer", {}).get("parent")
    if parent is not None and parent not in langs:
        raise ConfigError(f"config error: 'selection.methods.last-layer.parent' = {parent!r} is not in 'languages'")
    for method in data["training"]["methods"]:
        if method not in data["selection"]["methods"]:
            raise ConfigError(
                f"config error: 'training.methods' has {method!r}, which is not a method in 'selection.methods'"
            )
    if data["training"]["methods"] and not data["selection"]["targets"]:
        raise ConfigError("config error: 'training.methods' is set but 'selection.targets' is empty")
    known = sorted(datasets_registry.DATASETS)
    for role in ("routing", "training"):
        ref = data["datasets"].get(role)
        if ref is not None and ref["name"] not in known:
            raise ConfigError(
                f"config error: 'datasets.{role}.name' = {ref['name']!r} is not a known dataset ({', '.join(known)})"
            )
    for role in ("routing", "training"):
        ref = data["datasets"].get(role)
        if ref is None:
            continue
        try:
            datasets_registry.get_spec(ref["name"]).check_split(ref.get("split"))
        except ValueError as exc:
            raise ConfigError(f"config error: 'datasets.{role}.split': {exc}") from None
        role_langs = langs if role == "routing" else data["selection"]["targets"]
        for code in role_langs:
            try:
                datasets_registry.get_spec(ref["name"]).dataset_code(code)
            except ValueError as exc:
                raise ConfigError(f"config error: 'datasets.{role}': {exc}") from None
    from polyroute.interventions.experiments import check_config as check_interventions

    try:
        check_interventions(data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _build(cls: type, value: Any) -> Any:
    if not is_dataclass(cls) or not isinstance(value, dict):
        return value
    kwargs = {}
    for f in fields(cls):
        if f.name not in value:
            continue
        sub = value[f.name]
        target = _DATACLASS_FIELDS.get((cls.__name__, f.name))
        kwargs[f.name] = _build(target, sub) if target is not None and sub is not None else sub
    return cls(**kwargs)


_DATACLASS_FIELDS: dict[tuple[str, str], type] = {
    ("Config", "model"): ModelConfig,
    ("Config", "datasets"): DatasetsConfig,
    ("Config", "extraction"): ExtractionConfig,
    ("Config", "stats"): StatsConfig,
    ("Config", "selection"): SelectionConfig,
    ("Config", "training"): TrainingConfig,
    ("DatasetsConfig", "routing"): DatasetRef,
    ("DatasetsConfig", "training"): DatasetRef,
    ("Config", "interventions"): InterventionsConfig,
    ("InterventionsConfig", "task_data"): DatasetRef,
}


def load(raw: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> Config:
    """Validate a raw config (e.g. Snakemake's `config`) and return its typed view."""
    return _build(Config, validate(raw, schema))


def load_file(path: Path | str) -> Config:
    with open(path, encoding="utf-8") as handle:
        return load(yaml.safe_load(handle))


def check_against_model(data: Mapping[str, Any], info: Any) -> None:
    """Checks that need the model's own config (no weights): budgets, layer windows, top-k.

    `info` is a `polyroute.models.ModelInfo` (moe_layers, num_experts, top_k, num_hidden_layers).
    """
    moe_layers = list(info.moe_layers)
    if not moe_layers:
        raise ConfigError(f"config error: 'model.id' = {data['model']['id']!r} has no MoE layers")
    total = len(moe_layers) * info.num_experts
    methods = data["selection"]["methods"]
    for method in ("rise", "random"):
        budget = methods.get(method, {}).get("budget")
        if budget is not None and budget > total:
            raise ConfigError(
                f"config error: 'selection.methods.{method}.budget' = {budget} exceeds the model's "
                f"{total} experts ({len(moe_layers)} MoE layers x {info.num_experts})"
            )
        if budget is not None and method == "rise" and budget < 3:
            raise ConfigError("config error: 'selection.methods.rise.budget' must be at least 3 (one expert per zone)")
    n_last = methods.get("last-layer", {}).get("n")
    if n_last is not None and n_last > len(moe_layers):
        raise ConfigError(
            f"config error: 'selection.methods.last-layer.n' = {n_last} exceeds the model's {len(moe_layers)} MoE layers"
        )
    windows = {
        "selection.methods.all-experts.layers": (methods.get("all-experts") or {}).get("layers"),
        "stats.heatmap_layers": data["stats"].get("heatmap_layers"),
    }
    for key, layers in windows.items():
        for layer in layers or []:
            if layer not in moe_layers:
                raise ConfigError(
                    f"config error: '{key}' has layer {layer}, which is not an MoE layer of the model "
                    f"(MoE layers: {moe_layers[0]}..{moe_layers[-1]})"
                )
    from polyroute.interventions.experiments import check_against_model as check_interventions

    try:
        check_interventions(data, moe_layers, info.num_experts, info.top_k)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    m = data["stats"]["affinity_top_m"]
    if m > info.num_experts:
        raise ConfigError(
            f"config error: 'stats.affinity_top_m' = {m} exceeds the model's {info.num_experts} experts per layer"
        )


def read_model_info(path: Path | str) -> Any:
    """The model description written by the `model_info` step, as an object with attributes."""
    from types import SimpleNamespace

    with open(path, encoding="utf-8") as handle:
        return SimpleNamespace(**json.load(handle))


def read_model_info(path: Path | str) -> Any:
    """The model description written by the `model_info` step, as an object with attributes."""
    from types import SimpleNamespace

    with open(path, encoding="utf-8") as handle:
        return SimpleNamespace(**json.load(handle))
