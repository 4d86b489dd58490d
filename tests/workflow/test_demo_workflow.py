"""The embedded demo end to end through Snakemake: outputs, no-op reruns and what an edit reruns."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TRAINED = yaml.safe_load((ROOT / "config.yaml").read_text())["training"]["methods"]
pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def _jobs(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's 'Job stats' table."""
    table = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def test_every_stage_writes_its_outputs(demo: Path) -> None:
    import xarray as xr

    results = demo / "results" / "demo"
    routing = xr.open_zarr(results / "routing" / "flores_plus.zarr")
    assert {"count", "gate_sum", "prob_sum", "tokens", "seq_count", "expert_ids"} <= set(routing.data_vars)
    k = routing.attrs["top_k"]
    assert (routing["count"].sum("expert") == k * routing["tokens"]).all()
    assert (results / "stats" / "flores_plus.zarr" / ".complete").exists()
    assert sorted(p.name for p in (results / "selection").iterdir()) == sorted(
        yaml.safe_load((ROOT / "config.yaml").read_text())["selection"]["methods"])
    for method in TRAINED:
        assert (results / "adapters" / method / "swh_Latn" / "delta.safetensors").exists()
    assert not (results / "routing" / "shards").exists() or not any((results / "routing" / "shards").rglob("*.zarr"))
    assert any((demo / "logs" / "demo" / "extract_routing").rglob("*.log"))
    evaluation = yaml.safe_load((ROOT / "config.yaml").read_text())["evaluation"]
    for variant in ["base"] + [f"{method}-swh_Latn" for method in TRAINED]:
        for task in evaluation["tasks"]:
            files = list((results / "eval" / variant / task).glob("*.json"))
            assert files, f"{variant}/{task} wrote no result"
    import pandas as pd

    gains = pd.read_csv(results / "summary" / "gains.csv")
    assert set(gains["method"]) == set(TRAINED)
    assert gains["is_target"].any() and (~gains["is_target"]).any()
    assert gains.loc[gains["method"] == "rise", ["vs_random", "vs_matched"]].notna().all().all()
    scores = pd.read_csv(results / "eval" / "scores.csv")
    assert set(scores["language"]) == set(yaml.safe_load((ROOT / "config.yaml").read_text())["languages"])
    import xarray as xr

    stats = xr.open_zarr(results / "stats" / "flores_plus.zarr")
    assert "score" in stats  # the base model's measured Belebele accuracy reaches the statistics
    assert (results / "summary" / "figures" / "gains.png").exists()
    seeds = yaml.safe_load((ROOT / "config.yaml").read_text())["stats"]["noise_floor"]["seeds"]
    for seed in seeds:
        untrained = xr.open_zarr(results / "noise_floor" / "flores_plus" / f"seed{seed}.zarr")
        assert untrained.attrs["untrained_seed"] == seed
        assert (untrained["tokens"] == routing["tokens"]).all()  # the same text, the same tokens
    floor = pd.read_csv(results / "summary" / "noise_floor.csv")
    assert (floor["untrained_seeds"] == len(seeds)).all()
    assert (results / "summary" / "figures" / "noise_floor.png").exists()


def test_noop_rerun_is_fast_and_submits_nothing(demo: Path, snakemake) -> None:
    start = time.monotonic()
    again = snakemake(demo)
    elapsed = time.monotonic() - start
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stderr + again.stdout
    assert elapsed < 30, f"no-op rerun took {elapsed:.1f} s"


def _edited(snakemake, demo: Path, edit) -> dict[str, int]:
    config = yaml.safe_load((demo / "config.yaml").read_text())
    edit(config)
    path = demo / "edited.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    plan = snakemake(demo, "-n", "--configfile", str(path))
    assert plan.returncode == 0, plan.stderr[-3000:]
    return _jobs(plan.stdout + plan.stderr)


def test_selection_edit_reruns_only_downstream(demo: Path, snakemake) -> None:
    jobs = _edited(snakemake, demo, lambda c: c["selection"]["methods"]["rise"].update(alpha=5.0))
    # rise and random-matched (which matches rise's set) are retrained and evaluated again on every
    # task; nothing upstream reruns
    n_tasks = len(yaml.safe_load((demo / "config.yaml").read_text())["evaluation"]["tasks"])
    assert jobs == {"select_experts": 2, "train_subnetwork": 2, "evaluate": 2 * n_tasks, "summarize": 1, "all": 1}


def test_evaluation_edit_reruns_only_that_tasks_evaluation(demo: Path, snakemake) -> None:
    jobs = _edited(snakemake, demo, lambda c: c["evaluation"]["tasks"]["tydiqa"].update(limit=2))
    assert jobs == {"evaluate": 1 + len(TRAINED), "summarize": 1, "all": 1}  # base and every adapter


def test_training_edit_never_reruns_extraction(demo: Path, snakemake) -> None:
    jobs = _edited(snakemake, demo, lambda c: c["training"].update(lr=1e-4))
    assert "extract_routing" not in jobs and "routing_stats" not in jobs
    assert jobs.get("train_subnetwork") == len(TRAINED)


def test_stats_edit_reruns_stats_and_selection_not_extraction(demo: Path, snakemake) -> None:
    jobs = _edited(snakemake, demo, lambda c: c["stats"].update(exclusive_threshold=0.5))
    assert "extract_routing" not in jobs and "gather_routing" not in jobs
    assert jobs.get("routing_stats") == 1
    # the untrained models' routing stays; only their statistics are computed again
    assert "untrained_routing" not in jobs and jobs.get("noise_floor") == 1


def test_intervention_report_is_consistent_with_its_inputs(demo: Path) -> None:
    import json

    import numpy as np
    import pandas as pd

    summary = demo / "results" / "demo" / "summary"
    for name in ("steering_sweep", "masking", "routing_shift"):
        assert (summary / "figures" / f"{name}.png").stat().st_size > 0
    experiments = yaml.safe_load((demo / "config.yaml").read_text())["interventions"]["experiments"]
    changes = pd.read_csv(summary / "interventions.csv")
    steering = pd.read_csv(summary / "steering.csv")
    sweeps = {name for name, e in experiments.items() if isinstance(e.get("strength"), list) and len(e["strength"]) > 1}
    assert set(steering["experiment"]) == sweeps
    # each strength's mean is the mean of the per-language changes; a collapse point is a swept strength
    per_language = changes[changes["kind"] == "steer"].groupby(["experiment", "task", "metric", "strength"])["change"]
    for row in steering.itertuples():
        mean = per_language.mean()[(row.experiment, row.task, row.metric, row.strength)]
        assert row.mean_change == pytest.approx(mean, rel=1e-4, abs=1e-9)  # the CSVs keep 6 digits
        assert row.mean_ci_low <= row.mean_change <= row.mean_ci_high
        assert np.isnan(row.collapse_point) or row.collapse_point in experiments[row.experiment]["strength"]
    shift = pd.read_csv(summary / "routing_shift.csv")
    assert set(shift["intervention"]) == set(experiments)
    assert shift["jsd"].between(0, np.log(2)).all()
    # a masked expert is never in a top-k; the edited layers are those of the expert sets
    masked = shift[shift["intervention"].isin([n for n, e in experiments.items() if e["kind"] == "mask"])]
    assert (masked.loc[masked["edited_experts"] > 0, "edited_share_shifted"] == 0).all()
    for name in experiments:
        record = json.loads((demo / "results" / "demo" / "interventions" / f"{name}.json").read_text())
        edited = shift[(shift["intervention"] == name) & (shift["edited_experts"] > 0)]
        assert set(edited["layer"]) == {layer for layer, _ in record["experts"]}


def test_revisions_are_routed_on_their_own_and_compared(demo: Path) -> None:
    import xarray as xr

    config = yaml.safe_load((demo / "config.yaml").read_text())
    for revision in config["model"]["revisions"]:
        base = demo / "results" / "demo" / "revisions" / revision["label"]
        routing = xr.open_zarr(base / "routing" / "flores_plus.zarr")
        stats = xr.open_zarr(base / "stats" / "flores_plus.zarr")
        for store in (routing, stats):  # the revision in every store's provenance
            assert store.attrs["revision_label"] == revision["label"]
            assert store.attrs["training_step"] == revision["step"] and store.attrs["model"] == revision["path"]
    for name, comparison in config["compare"].items():
        out = demo / "results" / "compare" / name
        store = xr.open_zarr(out / "comparison.zarr")
        seeds = config["stats"]["noise_floor"]["seeds"]
        assert list(store["member"].values[:len(comparison["members"])]) == comparison["members"]
        assert int((store["kind"] == "untrained").sum()) == len(seeds)
        assert float(store["relative_depth"].min()) == 0 and float(store["relative_depth"].max()) == 1
        for figure in ("divergence_depth", "dynamics_heatmap", "jsd_steps", "score_correlation"):
            assert (out / "figures" / f"{figure}.png").stat().st_size > 0


def test_adding_a_revision_reruns_nothing_else(demo: Path, snakemake) -> None:
    shards = yaml.safe_load((demo / "config.yaml").read_text())["extraction"]["shards"]

    def add(config):
        config["model"]["revisions"].append({"label": "again", "path": config["model"]["id"], "step": 400})

    assert _edited(snakemake, demo, add) == {"revision_weights": 1, "revision_extract_routing": shards,
                                             "revision_gather_routing": 1, "revision_routing_stats": 1, "all": 1}
