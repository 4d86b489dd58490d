"""The slurm/ profile, read as Snakemake reads it: site-neutral, and GPU requests on the GPU rules.

No Slurm needed (test_slurm.py submits the profile's requests to a real cluster).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "slurm" / "config.yaml"
GPU_RULES = ("extract_routing", "untrained_routing", "task_routing", "intervention_routing", "train_subnetwork",
             "evaluate")
SITE_KEYS = ("slurm_account", "slurm_partition", "qos", "slurm-qos", "slurm-reservation")


def _profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def _workflow_rules() -> set[str]:
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    return set(re.findall(r"^\s*rule (\w+):", text, re.M))  # also those under an `if`


def _keys(node: object) -> set[str]:
    """Every mapping key at any depth."""
    if isinstance(node, dict):
        return set(node) | set().union(*(_keys(v) for v in node.values()))
    return set()


def test_profile_is_slurm_and_site_neutral() -> None:
    profile = _profile()
    assert profile["executor"] == "slurm"
    assert profile["rerun-incomplete"] is True and profile["keep-going"] is True
    assert profile["retries"] >= 1 and profile["latency-wait"] >= 30
    # account and partition are the user's one edit: documented, commented out, never set
    assert not _keys(profile) & set(SITE_KEYS), _keys(profile) & set(SITE_KEYS)
    text = PROFILE.read_text()
    assert "# slurm_account:" in text and "# slurm_partition:" in text


def test_default_resources_leave_threads_to_the_rules() -> None:
    defaults = _profile()["default-resources"]
    # cpus_per_task here would override every rule's `threads` in the sbatch request
    assert not {"cpus_per_task", "cpus_per_gpu", "gpu", "gres"} & set(defaults)
    assert defaults["mem_mb"] > 0 and defaults["runtime"] > 0


def test_gpu_rules_take_gpus_memory_and_runtime_from_the_rules() -> None:
    profile = _profile()
    rules_text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for rule in GPU_RULES:
        # sized by the rule from the model and the job's work (polyroute.sizing): a profile value would win
        assert not {"gpu", "gres", "mem_mb", "runtime"} & set((profile.get("set-resources") or {}).get(rule) or {}), rule
        assert f'**gpu_resources("{rule}")' in rules_text, f"{rule} does not size its own request"
        assert profile["set-threads"][rule] >= 1, rule
    # CPU rules get no GPU: nothing in set-resources asks for one
    assert not any({"gpu", "gres"} & set(res or {}) for res in (profile.get("set-resources") or {}).values())


def test_profile_names_real_workflow_rules() -> None:
    # a renamed rule would silently lose its GPU request
    rules = _workflow_rules()
    assert set(GPU_RULES) <= rules, set(GPU_RULES) - rules


def test_sharded_rules_go_out_as_job_arrays() -> None:
    # one `sbatch --array` for all extraction shards; an array asks for its first job's resources, so
    # evaluation (whose runtime differs by task) goes out job by job
    arrays = {rule.strip() for rule in _profile()["slurm-array-jobs"].split(",")}
    assert arrays == {"extract_routing"}, arrays
    assert "extract_routing" in _workflow_rules()
