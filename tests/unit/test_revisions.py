"""Revisions of the model and comparison members: config checks, the model block each revision loads,
and the workflow's plan (one routing per revision; adding one reruns nothing of the run's own)."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from polyroute import config as cfg
from polyroute import revisions

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
CHECKPOINTS = ROOT / "resources" / "models" / "polyroute-demo-qwen3moe" / "checkpoints"


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _with(default: dict, **changes) -> dict:
    data = copy.deepcopy(default)
    data["model"]["revisions"] = changes.get("revisions", [])
    data["compare"] = changes.get("compare", {})
    return data


def _error(raw: dict) -> str:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.validate(raw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_revision_is_a_hub_revision_or_a_folder_never_both(default) -> None:
    both = {"label": "a", "revision": "step1", "path": "x"}
    assert "model.revisions.0" in _error(_with(default, revisions=[both]))
    assert "model.revisions.0" in _error(_with(default, revisions=[{"label": "a"}]))
    twice = [{"label": "a", "revision": "x"}, {"label": "a", "revision": "y"}]
    assert "used twice" in _error(_with(default, revisions=twice))
    assert "model.revisions.0.label" in _error(_with(default, revisions=[{"label": "../up", "revision": "x"}]))


def test_comparison_members_must_name_known_revisions_of_this_run(default) -> None:
    data = _with(default, revisions=[{"label": "a", "revision": "x"}],
                 compare={"c": {"members": [f"{default['run']}/b", default["run"]]}})
    assert "compare.c.members" in _error(data) and "'b'" in _error(data)
    assert "compare.c.members" in _error(_with(default, compare={"c": {"members": ["../x", "y"]}}))


def test_each_revision_loads_its_own_checkpoint_and_the_run_model_none() -> None:
    data = {"run": "r", "datasets": {"routing": {"name": "flores_plus"}},
            "model": {"id": "org/m", "revision": "main", "dtype": "bfloat16", "step": 9, "tokens": None,
                      "revisions": [{"label": "s1", "revision": "step1", "step": 1, "tokens": 2e6},
                                    {"label": "local", "path": "ckpt/s2"}]},
            "compare": {"c": {"members": ["r/s1", "r", "other/x"]}}}
    assert revisions.main_model(data["model"]) == {"id": "org/m", "revision": "main", "dtype": "bfloat16"}
    assert revisions.revision_model(data, "s1") == {"id": "org/m", "revision": "step1", "dtype": "bfloat16"}
    assert revisions.revision_model(data, "local") == {"id": "ckpt/s2", "revision": None, "dtype": "bfloat16"}
    assert revisions.revision_attrs(data, "s1") == {"revision_label": "s1", "training_step": 1, "training_tokens": 2e6}
    assert revisions.revision_attrs(data, "local") == {"revision_label": "local"}
    assert revisions.active_comparisons(data) == ["c"]
    assert revisions.active_comparisons(data | {"run": "another"}) == []  # made only by the runs it includes
    members = revisions.compare_members(data, "c")
    assert [m.stats for m in members] == ["results/r/revisions/s1/stats/flores_plus.zarr",
                                          "results/r/stats/flores_plus.zarr", "results/other/revisions/x/stats/flores_plus.zarr"]
    assert [(m.step, m.tokens) for m in members] == [(1, 2e6), (9, None), (None, None)]


def _workdir(tmp_path: Path, default: dict) -> Path:
    """A copy of the workflow (resources linked) where Snakemake can plan and run without touching the
    repo; its config is the default without revisions and comparisons, which the tests add."""
    for name in ("Snakefile", "workflow"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    for name in ("resources", "envs"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(_with(default), sort_keys=False))
    return tmp_path


def _snakemake(workdir: Path, *args: str) -> dict[str, int]:
    env = dict(os.environ, DS_ACCELERATOR="cpu")
    done = subprocess.run([SNAKEMAKE, "--cores", "1", *args], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    table = (done.stdout + done.stderr).split("Job stats:", 1)[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def _overlay(workdir: Path, labels: list[str], evaluate: bool = False) -> str:
    data = {"model": {"revisions": [{"label": label, "path": str(CHECKPOINTS / label), "step": int(label[5:]),
                                     "evaluate": evaluate} for label in labels]}}
    path = workdir / f"revisions-{len(labels)}{'-evaluated' if evaluate else ''}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.slow
def test_one_routing_per_revision_and_adding_one_reruns_nothing_else(tmp_path, default) -> None:
    labels = sorted(p.name for p in CHECKPOINTS.iterdir())[:2]
    work = _workdir(tmp_path, default)
    shards = default["extraction"]["shards"]
    plan = _snakemake(work, "-n", "--configfile", _overlay(work, labels))
    assert plan["revision_extract_routing"] == shards * len(labels)
    assert plan["revision_gather_routing"] == plan["revision_routing_stats"] == len(labels)
    assert plan["extract_routing"] == shards and plan["routing_stats"] == 1  # the run's own, once
    assert "revision_evaluate" not in plan  # no revision asks for evaluation
    # the run's model, then a revision added: the run's model steps (params include the model block) stay done
    own = ["results/demo/model/info.json", "results/demo/model/weights.json"]
    _snakemake(work, *own, "--configfile", _overlay(work, labels[:1]))
    first = f"results/demo/revisions/{labels[0]}/model/weights.json"
    second = f"results/demo/revisions/{labels[1]}/model/weights.json"
    _snakemake(work, first, "--configfile", _overlay(work, labels[:1]))
    assert _snakemake(work, "-n", *own, first, second, "--configfile", _overlay(work, labels)) == {"revision_weights": 1}
    # evaluated when asked: the base model on every task; its scores file is planned because its
    # statistics read it (nothing else does)
    plan = _snakemake(work, "-n", "--configfile", _overlay(work, labels[:1], evaluate=True))
    assert plan["revision_evaluate"] == len(default["evaluation"]["tasks"]) and plan["revision_eval_scores"] == 1


def _config_workdir(tmp_path: Path) -> Path:
    for name in ("Snakefile", "config.yaml", "workflow", "configs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    for name in ("resources", "envs"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


@pytest.mark.slow
def test_olmoe_dynamics_and_model_comparison_configs_plan_offline(tmp_path) -> None:
    work = _config_workdir(tmp_path)
    dynamics = yaml.safe_load((ROOT / "configs" / "olmoe-1b-7b-dynamics.yaml").read_text())
    shards = yaml.safe_load((ROOT / "configs" / "olmoe-1b-7b.yaml").read_text())["extraction"]["shards"]
    plan = _snakemake(work, "-n", "--configfile", "configs/olmoe-1b-7b.yaml", "configs/olmoe-1b-7b-dynamics.yaml")
    assert plan["revision_weights"] == len(dynamics["model"]["revisions"])  # each hub revision fetched once
    assert plan["revision_extract_routing"] == shards * len(dynamics["model"]["revisions"])
    assert plan["compare"] == 1 and plan["extract_routing"] == shards
    # the cross-model comparison reads the other runs' statistics where their own configs write them
    members = yaml.safe_load((ROOT / "configs" / "compare-models.yaml").read_text())["compare"]["models"]["members"]
    for run in members[1:]:
        (work / "results" / run / "stats" / "flores_plus.zarr").mkdir(parents=True)
    plan = _snakemake(work, "-n", "--configfile", f"configs/{members[0]}.yaml", "configs/compare-models.yaml")
    assert plan["compare"] == 1 and "revision_extract_routing" not in plan
