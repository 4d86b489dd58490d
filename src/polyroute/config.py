"""The run configuration: schema validation, defaults, semantic checks and a typed view.

The JSON Schema in workflow/schemas/config.schema.yaml is the single source of truth for keys,
types and defaults. `validate` fills the defaults in; the dataclasses below mirror the keys and take
no defaults of their own (a test checks both); library code that accepts partial settings takes its
defaults from the schema through `schema_defaults`. Every error is one line that names the offending
key, raised before any expensive work.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from polyroute.errors import UserError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(UserError):
    """A configuration problem, reported as one line that names the key."""


@dataclass(frozen=True)
class ModelConfig:
    id: str
    revision: str | None
    dtype: str
    trust_remote_code: bool
    attn_implementation: str | None
    experts_implementation: str | None
    step: int | None
    tokens: float | None
    revisions: list[dict[str, Any]]  # polyroute.revisions reads them


@dataclass(frozen=True)
class DatasetRef:
    name: str
    split: str | None


@dataclass(frozen=True)
class DatasetsConfig:
    routing: DatasetRef
    local: str | None
    max_items: int | None
    training: DatasetRef | None = None  # optional and without a schema default: absent means none


@dataclass(frozen=True)
class ExtractionConfig:
    shards: int
    batch_tokens: int
    max_length: int
    per_token: bool


@dataclass(frozen=True)
class NoiseFloorConfig:
    seeds: list[int]
    items: int | None


@dataclass(frozen=True)
class StatsConfig:
    log_base: str | int
    distribution: str
    divergence_input: str
    affinity_top_m: int
    exclusive_threshold: float
    language_gap: float
    shared_top: int
    high_resource: list[str]
    scores: str | None
    heatmap_layers: list[int] | None
    noise_floor: NoiseFloorConfig | None


@dataclass(frozen=True)
class SelectionConfig:
    targets: list[str]
    methods: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class TrainingConfig:
    methods: list[str]
    zero_stage: int
    lr: float
    epochs: int
    max_length: int
    weight_decay: float
    warmup_ratio: float
    micro_batch_size: int
    gradient_accumulation: int
    checkpoint_every: int
    train_routers: bool
    enforce_routing: bool
    gradient_checkpointing: bool
    deterministic: bool
    seed: int
    gpus: int


@dataclass(frozen=True)
class EvaluationConfig:
    tasks: dict[str, dict[str, Any] | None]
    adapters: bool
    batch_size: int
    batch_tokens: int
    max_new_tokens: int
    static_cache: bool | None
    limit: int | None
    bootstrap: int
    seed: int
    scores: dict[str, str] | None


@dataclass(frozen=True)
class InterventionsConfig:
    shift_items: int
    tasks: list[str] | None
    experiments: dict[str, dict[str, Any]]
    task_data: DatasetRef | None = None  # optional and without a schema default: absent means none


@dataclass(frozen=True)
class ClusterConfig:
    gpu_memory_gb: float
    gpu_headroom: float
    runtime_margin: float
    runtime_floor: int
    throughput: str | None


@dataclass(frozen=True)
class Config:
    run: str
    model: ModelConfig
    languages: list[str]
    reference_language: str
    datasets: DatasetsConfig
    extraction: ExtractionConfig
    stats: StatsConfig
    selection: SelectionConfig
    training: TrainingConfig
    evaluation: EvaluationConfig
    interventions: InterventionsConfig
    cluster: ClusterConfig
    compare: dict[str, dict[str, Any]]


def load_schema(path: Path | str = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@functools.cache
def _schema() -> dict[str, Any]:
    return load_schema()


def schema_defaults(*path: str) -> dict[str, Any]:
    """The schema's defaults of the keys of the config object at `path`, e.g. ``("training",)`` or
    ``("selection", "methods", "rise")``: what library code uses for a setting it is not given, so a
    run inside and outside the workflow behaves alike. Keys without a default are left out."""
    root = _schema()
    node = _resolve(root, root)
    for key in path:
        try:
            node = _resolve(node["properties"][key], root)
        except KeyError:
            raise KeyError(f"the config schema has no object {'.'.join(path)!r}") from None
    out = {}
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub, root)
        if "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
    return out


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
    _check_last_layer(data)
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
    _check_evaluation(data["evaluation"], langs, data["datasets"]["local"], data["interventions"]["tasks"])
    _check_held_out(data)
    from polyroute.interventions.experiments import check_config as check_interventions

    try:
        check_interventions(data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    from polyroute.revisions import check_config as check_revisions

    try:
        check_revisions(data)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None



def _check_last_layer(data: Mapping[str, Any]) -> None:
    """Khandelwal's rule needs, for a target outside the compared languages, a parent among them."""
    settings = data["selection"]["methods"].get("last-layer")
    if settings is None:
        return
    key = "selection.methods.last-layer"
    for child, parent in settings["parents"].items():
        for code in (child, parent):
            if code not in data["languages"]:
                raise ConfigError(f"config error: '{key}.parents' has {code!r}, which is not in 'languages'")
    if settings["gap_languages"] == "all":
        return
    high = data["stats"]["high_resource"]
    if not high:
        raise ConfigError(f"config error: '{key}.gap_languages' = 'high-resource' needs 'stats.high_resource' languages")
    for target in data["selection"]["targets"]:
        owner = settings["parents"].get(target, target)
        if owner not in high:
            raise ConfigError(f"config error: '{key}.parents': target {target!r} is not in 'stats.high_resource' and "
                              f"has no high-resource parent (or set {key}.gap_languages: all)")


def _check_held_out(data: Mapping[str, Any]) -> None:
    """Subnetworks must not train on the split an evaluated task scores (its gain would not be held out)."""
    from polyroute.evaluate.tasks import TASKS

    training = data["datasets"].get("training")
    if training is None or not data["training"]["methods"]:
        return
    for name in data["evaluation"]["tasks"]:
        task = TASKS[name]
        if task.dataset == training["name"] and training.get("split") in (None, task.test_split):
            split = "every split" if training.get("split") is None else f"split {task.test_split!r}"
            raise ConfigError(f"config error: 'datasets.training' trains on {training['name']} {split}, which task "
                              f"{name} scores: its gains would not be held out (train on another split)")


def _has_items(task: Any, language: str, local: str | None) -> bool:
    """Whether the task has items in `language`: in the dataset, and in the local mirror if one is used."""
    if not task.supports(language):
        return False
    if local is None:
        return True
    from polyroute import data as datasets_registry  # as _check_semantics: needs no `datasets` here

    spec = datasets_registry.get_spec(task.dataset)  # the hub layout <local>/<dataset>/<config>/<split>.jsonl (polyroute.data)
    return (Path(local) / spec.name / spec.hf_config(language) / f"{task.test_split}.jsonl").is_file()


def evaluation_languages(name: str, settings: Mapping[str, Any] | None, languages: list[str],
                         local: str | None = None) -> list[str]:
    """The languages task `name` is evaluated on: its own list, else every run language it has items
    in (in the local mirror `local`, when the run reads one)."""
    from polyroute.evaluate.tasks import get_task

    own = (settings or {}).get("languages")
    task = get_task(name)
    return list(own) if own is not None else [code for code in languages if _has_items(task, code, local)]


def _check_evaluation(evaluation: Mapping[str, Any], langs: list[str], local: str | None,
                      interventions_tasks: list[str] | None) -> None:
    from polyroute.evaluate.tasks import TASKS

    for name, settings in evaluation["tasks"].items():
        key = f"evaluation.tasks.{name}"
        if name not in TASKS:
            raise ConfigError(f"config error: '{key}' is not a known task (known: {', '.join(TASKS)})")
        task = TASKS[name]
        for code in (settings or {}).get("languages") or []:
            if code not in langs:
                raise ConfigError(f"config error: '{key}.languages' has {code!r}, which is not in 'languages'")
            if not task.supports(code):
                raise ConfigError(f"config error: '{key}.languages' has {code!r}, which task {name} "
                                  f"({task.dataset}) does not have")
            if not _has_items(task, code, local):
                raise ConfigError(f"config error: '{key}.languages' has {code!r}, which the local data "
                                  f"'{local}' has no {task.dataset} {task.test_split} file for")
        if not evaluation_languages(name, settings, langs, local):
            raise ConfigError(f"config error: '{key}': task {name} ({task.dataset}) has none of the run's languages")
    for name in (interventions_tasks or []):
        if name not in evaluation["tasks"]:
            raise ConfigError(f"config error: 'interventions.tasks' has {name!r}, which is not in 'evaluation.tasks'")
    scores = evaluation.get("scores")
    if scores is not None:
        if scores["task"] not in evaluation["tasks"]:
            raise ConfigError(f"config error: 'evaluation.scores.task' = {scores['task']!r} is not in 'evaluation.tasks'")
        known = TASKS[scores["task"]].metrics
        if scores["metric"] not in known:
            raise ConfigError(f"config error: 'evaluation.scores.metric' = {scores['metric']!r} is not a metric of "
                              f"{scores['task']} ({', '.join(known)})")


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
    ("StatsConfig", "noise_floor"): NoiseFloorConfig,
    ("Config", "selection"): SelectionConfig,
    ("Config", "training"): TrainingConfig,
    ("Config", "evaluation"): EvaluationConfig,
    ("DatasetsConfig", "routing"): DatasetRef,
    ("DatasetsConfig", "training"): DatasetRef,
    ("Config", "interventions"): InterventionsConfig,
    ("InterventionsConfig", "task_data"): DatasetRef,
    ("Config", "cluster"): ClusterConfig,
}


def load(raw: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> Config:
    """Validate a raw config (e.g. Snakemake's `config`) and return its typed view."""
    return _build(Config, validate(raw, schema))


def load_file(path: Path | str) -> Config:
    with open(path, encoding="utf-8") as handle:
        return load(yaml.safe_load(handle))


def check_against_model(data: Mapping[str, Any], info: Any) -> None:
    """Checks that need the model's own config (no weights): budgets, layer windows, top-k.

    `info` is a `polyroute.models.info.ModelInfo` (or anything with its moe_layers and num_experts).
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
        rounding = methods.get("rise", {}).get("budget_rounding")
        if budget is not None and method == "rise" and rounding == "largest-remainder" and budget < 3:
            raise ConfigError("config error: 'selection.methods.rise.budget' must be at least 3 with "
                              "budget_rounding: largest-remainder (one expert per zone)")
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
