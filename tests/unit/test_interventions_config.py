"""The `interventions` config block: schema and semantic checks are one-line errors before any job;
experiments become evaluation variants."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from polyroute import config as cfg
from polyroute.interventions.experiments import experiments, variants

ROOT = Path(__file__).resolve().parents[2]
MODEL = SimpleNamespace(moe_layers=list(range(8)), num_experts=16, top_k=4, num_hidden_layers=8)


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def with_experiment(default: dict, **experiment) -> dict:
    raw = copy.deepcopy(default)
    raw["interventions"]["experiments"] = {"x": experiment}
    return raw


def error(raw: dict, against_model: bool = False) -> str:
    with pytest.raises(cfg.ConfigError) as info:
        data = cfg.validate(raw)
        if against_model:
            cfg.check_against_model(data, MODEL)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_default_experiments_and_their_variants(default):
    data = cfg.validate(default)
    exps = experiments(data)
    assert exps["en-task"].language == "eng_Latn" and exps["en-task"].settings == {"tau": 0.05}  # demo-lowered
    assert exps["swh-early"].strengths == [None] and exps["swh-early"].languages == data["languages"]
    names = list(variants(data))
    assert names[:2] == ["steer-en-task-0.5", "steer-en-task-1"]
    assert {"mask-swh-early", "mask-swh-middle", "mask-swh-late", "steer-en-shared-0.022"} <= set(names)
    one = with_experiment(default, kind="hard", experts="bandarkar-task")
    assert variants(cfg.validate(one)) == {"steer-x": variants(cfg.validate(one))["steer-x"]}
    assert variants(cfg.validate(one))["steer-x"].strength is None
    # Chen's steering set as their scripts: W over en and zh only, top 20 per (language, layer)
    assert exps["en-shared"].settings == {"low": 0.3, "high": 0.7, "sources": ["eng_Latn", "zho_Hans"], "top_m": 20}
    every = with_experiment(default, kind="affinity", experts="chen-shared", sources="all", top_m=15)
    assert experiments(cfg.validate(every))["x"].settings["sources"] is None
    # a configs/*.yaml drops an inherited experiment with null
    dropped = copy.deepcopy(default)
    dropped["interventions"]["experiments"]["swh-late"] = None
    assert "swh-late" not in experiments(cfg.validate(dropped)) and "mask-swh-late" not in variants(cfg.validate(dropped))
    soft = with_experiment(default, kind="soft", experts="bandarkar-task")
    assert variants(cfg.validate(soft))["steer-x"].strength == 0.5  # Bandarkar's default lambda


@pytest.mark.parametrize("experiment, expected", [
    (dict(kind="boost", experts="chen-shared"), "'interventions.experiments.x.kind'"),
    (dict(kind="soft", experts="chen-shared", strength=[]), "'interventions.experiments.x.strength'"),
    (dict(kind="soft", experts="magic"), "'interventions.experiments.x.experts'"),
    (dict(kind="soft", experts="chen-shared", window="deep"), "'interventions.experiments.x.window'"),
    (dict(kind="soft", experts="chen-shared", window=[10, 60]), "'interventions.experiments.x.window'"),
    (dict(kind="soft", experts="chen-shared", alpha=1), "unknown key 'interventions.experiments.x.alpha'"),
    (dict(kind="mask", experts="chen-exclusive", language="swh_Latn", strength=0.5), "x.strength': mask takes no strength"),
    (dict(kind="mask", experts="chen-exclusive"), "x.language': chen-exclusive needs the language"),
    (dict(kind="affinity", experts="bandarkar-task"), "x.experts': affinity needs per-expert scores"),
    (dict(kind="hard", experts="list"), "x.list': experts: list needs the (layer, expert) pairs"),
    (dict(kind="affinity", experts="list", list=[[1, 2]]), "x.scores': affinity with a list needs one score"),
    (dict(kind="soft", experts="chen-shared", language="jpn_Jpan"), "x.language': 'jpn_Jpan' is not in 'languages'"),
    (dict(kind="soft", experts="chen-shared", window="early", layers=[1]), "x.layers': give a window or layers, not both"),
    (dict(kind="soft", experts="chen-shared", low=0.8, high=0.7), "x.low': low=0.8 must be below high=0.7"),
    (dict(kind="soft", experts="chen-shared", language="swh_Latn"),
     "x.sources': the steering source 'swh_Latn' (key 'language') is not among ['eng_Latn', 'zho_Hans']"),
    (dict(kind="soft", experts="chen-shared", sources=["eng_Latn", "jpn_Jpan"]), "x.sources': 'jpn_Jpan' is not in"),
    (dict(kind="soft", experts="chen-shared", sources=["eng_Latn"]), "'interventions.experiments.x.sources'"),
    (dict(kind="mask", experts="chen-exclusive", language="swh_Latn", top_m=20),
     "x.top_m': only 'experts: chen-shared' takes steering sources and top_m"),
])
def test_bad_experiments_are_one_line_errors(default, experiment, expected):
    assert expected in error(with_experiment(default, **experiment))


def test_bandarkar_task_needs_task_data(default):
    raw = with_experiment(default, kind="soft", experts="bandarkar-task")
    del raw["interventions"]["task_data"]
    assert "x.experts': bandarkar-task needs 'interventions.task_data'" in error(raw)
    raw["interventions"]["task_data"] = {"name": "mgsm", "split": "dev"}
    assert "'interventions.task_data'" in error(raw) and "dev" in error(raw)


@pytest.mark.parametrize("experiment, expected", [
    (dict(kind="soft", experts="chen-shared", layers=[8]), "x.layers': layer 8 is not an MoE layer of the model"),
    (dict(kind="hard", experts="list", list=[[9, 0]]), "x.list': layer 9 is not an MoE layer"),
    (dict(kind="hard", experts="list", list=[[1, 16]]), "x.list': expert 16 is outside 0..15"),
    (dict(kind="hard", experts="list", list=[[1, e] for e in range(5)]), "hard forces 5 experts of one layer into a top-4"),
    (dict(kind="mask", experts="list", list=[[1, e] for e in range(13)]), "masking 13 of 16 experts in one layer leaves fewer than k=4"),
])
def test_settings_the_model_cannot_take_are_one_line_errors(default, experiment, expected):
    assert expected in error(with_experiment(default, **experiment), against_model=True)
