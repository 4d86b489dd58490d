"""The config: schema and dataclasses agree, defaults fill in, every bad input is a one-line error."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from polyroute import config as cfg

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _error(raw: dict) -> str:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.validate(raw)
    message = str(info.value)
    assert "\n" not in message
    return message


def _dataclass_of(annotation) -> type | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def _compare(schema: dict, cls: type, root: dict, where: str) -> None:
    props = schema.get("properties", {})
    hints = typing.get_type_hints(cls)
    assert set(props) == set(hints), f"{where}: schema {sorted(props)} vs dataclass {sorted(hints)}"
    for name, sub in props.items():
        if "$ref" in sub:
            sub = root["$defs"][sub["$ref"].split("/")[-1]]
        nested = _dataclass_of(hints[name])
        if sub.get("type") == "object" and nested is not None:
            _compare(sub, nested, root, f"{where}.{name}")
        field = {f.name: f for f in dataclasses.fields(cls)}[name]
        if "default" in sub or name in schema.get("required", ()):  # the schema is the one source of defaults
            assert field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING, \
                f"{where}.{name}: the dataclass repeats a default the schema owns"


def test_schema_and_dataclasses_agree() -> None:
    schema = cfg.load_schema()
    _compare(schema, cfg.Config, schema, "config")


def test_schema_defaults_are_read_from_the_schema() -> None:
    schema = cfg.load_schema()
    training = schema["properties"]["training"]["properties"]
    assert cfg.schema_defaults("training") == {k: v["default"] for k, v in training.items()}
    rise = schema["properties"]["selection"]["properties"]["methods"]["properties"]["rise"]["properties"]
    assert cfg.schema_defaults("selection", "methods", "rise") == {"budget": None, "split": [0.35, 0.25],
                                                                   "budget_rounding": "floor", "alpha": 10.0}
    assert set(rise) == {"budget", "split", "budget_rounding", "alpha"}
    assert cfg.schema_defaults("datasets", "routing") == {"split": None}  # through the $ref
    cfg.schema_defaults("training")["methods"].append("x")  # a copy: the next caller is not affected
    assert cfg.schema_defaults("training")["methods"] == []
    with pytest.raises(KeyError, match="no object 'training.nope'"):
        cfg.schema_defaults("training", "nope")


def test_default_config_is_valid_and_typed(default: dict) -> None:
    typed = cfg.load(default)
    assert typed.run == "demo"
    assert typed.reference_language in typed.languages
    assert typed.extraction.shards >= 1
    assert typed.datasets.routing.name == "flores_plus"


def test_defaults_are_filled(default: dict) -> None:
    raw = copy.deepcopy(default)
    del raw["stats"]
    raw["extraction"] = {"shards": 3}
    data = cfg.validate(raw)
    assert data["stats"]["exclusive_threshold"] == 0.4
    assert data["extraction"]["batch_tokens"] == 16384
    assert data["model"]["trust_remote_code"] is False


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("stats", "bogus"), 1, "unknown key 'stats.bogus'"),
        (("bogus",), 1, "unknown key 'bogus'"),
        (("languages",), ["eng_Latn", "xxx_Latn"], "languages.1"),
        (("languages",), ["eng_Latn", "english"], "languages.1"),
        (("reference_language",), "fra_Latn", "reference_language"),
        (("selection", "targets"), ["kor_Hang"], "selection.targets"),
        (("extraction", "shards"), 0, "extraction.shards"),
        (("datasets", "routing", "name"), "nope", "datasets.routing.name"),
        (("training", "methods"), ["esft-unknown"], "training.methods"),
        (("model", "dtype"), "float8", "model.dtype"),
    ],
)
def test_bad_input_is_one_line_naming_the_key(default: dict, path, value, expected) -> None:
    raw = copy.deepcopy(default)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    if path == ("reference_language",):
        raw["languages"] = [code for code in raw["languages"] if code != "fra_Latn"]
    assert expected in _error(raw)


def test_last_layer_low_resource_target_needs_a_high_resource_parent(default: dict) -> None:
    # Khandelwal's rule compares the high-resource languages; the demo's Swahili is not one of them
    raw = copy.deepcopy(default)
    raw["selection"]["methods"]["last-layer"]["gap_languages"] = "high-resource"
    message = _error(raw)
    assert message.startswith("config error: 'selection.methods.last-layer.parents': target 'swh_Latn'")
    raw["selection"]["methods"]["last-layer"]["parents"] = {"swh_Latn": "eng_Latn"}
    cfg.validate(raw)
    raw["selection"]["methods"]["last-layer"]["parents"] = {"swh_Latn": "kor_Hang"}
    assert "'selection.methods.last-layer.parents' has 'kor_Hang'" in _error(raw)
    raw["selection"]["methods"]["last-layer"]["parents"] = {"swh_Latn": "rus_Cyrl"}  # not high-resource
    assert "no high-resource parent" in _error(raw)
    raw["stats"]["high_resource"] = []
    assert "needs 'stats.high_resource'" in _error(raw)


@pytest.mark.parametrize("split, named", [("devtest", "split 'devtest'"), (None, "every split")])
def test_training_on_the_split_an_evaluated_task_scores_is_refused(default: dict, split, named) -> None:
    raw = copy.deepcopy(default)
    raw["datasets"]["training"] = {"name": "flores_plus", "split": split}
    message = _error(raw)
    assert message.startswith("config error: 'datasets.training'") and named in message and "perplexity" in message
    # without the perplexity task, or without training, devtest is nobody's held-out text
    del raw["evaluation"]["tasks"]["perplexity"]
    raw["interventions"]["tasks"] = [t for t in raw["interventions"]["tasks"] if t != "perplexity"]
    cfg.validate(raw)


def test_language_missing_from_dataset_is_named(default: dict) -> None:
    raw = copy.deepcopy(default)
    raw["datasets"]["routing"] = {"name": "mgsm", "split": "test"}
    raw["languages"] = ["eng_Latn", "ell_Grek"]
    raw["stats"]["high_resource"] = ["eng_Latn"]
    raw["selection"]["targets"] = []
    raw["training"]["methods"] = []
    message = _error(raw)
    assert "datasets.routing" in message and "ell_Grek" in message


def _info(**kw) -> SimpleNamespace:
    base = dict(model_id="m", revision=None, model_type="qwen3_moe", moe_layers=list(range(8)), num_experts=16, top_k=4, num_hidden_layers=8)
    base.update(kw)
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    ("mutate", "info", "expected"),
    [
        (lambda d: d["selection"]["methods"]["rise"].update(budget=129), _info(), "selection.methods.rise.budget"),
        (lambda d: d["selection"]["methods"]["all-experts"].update(layers=[8]), _info(), "selection.methods.all-experts.layers"),
        (lambda d: d["stats"].update(heatmap_layers=[0, 99]), _info(), "stats.heatmap_layers"),
        (lambda d: d["selection"]["methods"]["last-layer"].update(n=9), _info(), "last-layer.n"),
        (lambda d: None, _info(moe_layers=[]), "no MoE layers"),
        (lambda d: None, _info(num_experts=8), "stats.affinity_top_m"),
    ],
)
def test_model_checks_name_the_key(default: dict, mutate, info, expected) -> None:
    data = cfg.validate(default)
    mutate(data)
    with pytest.raises(cfg.ConfigError, match=expected.replace(".", r"\.")):
        cfg.check_against_model(data, info)


def test_model_checks_pass_on_default(default: dict) -> None:
    cfg.check_against_model(cfg.validate(default), _info())


def _overlay(path: Path) -> bool:
    """A config without `run` is an overlay, given after the config of a run it names (revisions, comparisons)."""
    return "run" not in yaml.safe_load(path.read_text())


@pytest.mark.parametrize("path", [p for p in sorted((ROOT / "configs").glob("*.yaml")) if not _overlay(p)],
                         ids=lambda p: p.stem)
def test_shipped_configs_are_valid_over_the_default(default: dict, path: Path) -> None:
    from snakemake.utils import update_config

    merged = copy.deepcopy(default)
    update_config(merged, yaml.safe_load(path.read_text()))
    data = cfg.validate(merged)
    assert data["run"] == path.stem
    assert data["datasets"]["local"] is None
    # the demo's checkpoints and their place in training never leak into a real model's run
    assert data["model"]["revisions"] == [] and data["model"]["step"] is None


@pytest.mark.parametrize("path", [p for p in sorted((ROOT / "configs").glob("*.yaml")) if _overlay(p)],
                         ids=lambda p: p.stem)
def test_shipped_overlays_are_valid_over_each_run_they_name(default: dict, path: Path) -> None:
    from snakemake.utils import update_config

    overlay = yaml.safe_load(path.read_text())
    runs = {member.partition("/")[0] for comparison in overlay["compare"].values() for member in comparison["members"]}
    for run in sorted(runs):  # every member is a shipped run, and the overlay fits over each
        merged = copy.deepcopy(default)
        update_config(merged, yaml.safe_load((ROOT / "configs" / f"{run}.yaml").read_text()))
        update_config(merged, copy.deepcopy(overlay))
        assert cfg.validate(merged)["run"] == run
