"""The ready configs, one per paper (configs/<paper>-<model>.yaml): each names what it reproduces and the
number to compare with, sets up that paper's own experiment with the authors' conventions, and plans
offline (`snakemake -n --configfile ...`, no model or data needed)."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from polyroute import config as cfg
from polyroute.interventions.experiments import experiments
from polyroute.select.zones import allocate

ROOT = Path(__file__).resolve().parents[2]
PAPERS = ("rise-qwen3-30b-a3b", "bandarkar-qwen3-30b-a3b", "chen-qwen3-30b-a3b", "khandelwal-olmoe-1b-7b")


def _merged(name: str) -> dict:
    from snakemake.utils import update_config

    merged = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(merged, yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text()))
    return cfg.validate(copy.deepcopy(merged))


@pytest.mark.parametrize("name", PAPERS)
def test_header_names_what_it_reproduces_and_the_number(name: str) -> None:
    text = (ROOT / "configs" / f"{name}.yaml").read_text()
    header = text[: text.index("\nrun:")]  # the comment block above the first key
    assert re.search(r"(Table|table|Figure|figure)", header), name
    assert "Compare:" in header and re.search(r"[+]?\d+(\.\d+)?", header.split("Compare:")[1]), name


def test_rise_is_the_papers_budget_and_split() -> None:
    data = _merged("rise-qwen3-30b-a3b")
    rise = data["selection"]["methods"]["rise"]
    assert (rise["budget"], rise["split"], rise["budget_rounding"], rise["alpha"]) == (128, [0.35, 0.25], "floor", 10.0)
    assert allocate(rise["budget"], rise["split"], (128 * 18, 128 * 12, 128 * 18)) == [44, 32, 52]
    assert data["datasets"]["training"] == {"name": "tydiqa", "split": "train"}
    assert data["evaluation"]["tasks"]["mgsm_direct"]["limit"] == 200
    assert not experiments(data)


def test_bandarkar_steers_task_experts_and_reads_used_weights() -> None:
    data = _merged("bandarkar-qwen3-30b-a3b")
    assert data["stats"]["divergence_input"] == "used"
    exps = experiments(data)
    assert set(exps) == {"en-task", "en-task-hard"} and exps["en-task"].settings == {"tau": 0.3}
    assert exps["en-task"].strengths == [0.5]


def test_chen_steering_and_masking_as_their_scripts() -> None:
    data = _merged("chen-qwen3-30b-a3b")
    exps = experiments(data)
    en, zh = exps["en-shared"], exps["zh-shared"]
    assert en.settings == {"low": 0.3, "high": 0.7, "sources": ["eng_Latn", "zho_Hans"], "top_m": 20}
    assert (en.strengths, zh.strengths, zh.language) == ([0.022], [0.034], "zho_Hans")
    assert {exps[f"swh-{w}"].window for w in ("early", "middle", "late")} == {"early", "middle", "late"}
    assert all(exps[f"swh-{w}"].settings["theta"] == 0.4 for w in ("early", "middle", "late"))
    assert data["stats"]["affinity_top_m"] == 15 and "en-task" not in exps


def test_khandelwal_compares_high_resource_languages_with_parents() -> None:
    data = _merged("khandelwal-olmoe-1b-7b")
    last = data["selection"]["methods"]["last-layer"]
    assert last["gap_languages"] == "high-resource" and last["n"] == 2
    high = data["stats"]["high_resource"]
    assert len(high) == 7 and all(last["parents"][t] in high for t in data["selection"]["targets"])
    assert data["evaluation"]["tasks"] == {**data["evaluation"]["tasks"], "multiblimp": {"num_fewshot": 0},
                                           "belebele": {"num_fewshot": 4}}


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPERS)
def test_plans_offline(name: str, tmp_path: Path) -> None:
    for item in ("Snakefile", "config.yaml", "workflow", "envs", "configs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    done = subprocess.run([snakemake, "-n", "--configfile", f"configs/{name}.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, flags=re.M))
    want = {"rise-qwen3-30b-a3b": "train_subnetwork", "bandarkar-qwen3-30b-a3b": "intervention_experts",
            "chen-qwen3-30b-a3b": "intervention_experts", "khandelwal-olmoe-1b-7b": "train_subnetwork"}[name]
    assert int(jobs.get(want, 0)) > 0, jobs
