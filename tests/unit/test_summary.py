"""The summary tables against direct computations on a synthetic statistics store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyroute.pipeline.summary import by_language, by_layer, selections, trainings
from polyroute.stats import compute_stats
from polyroute.stats.synthetic import synthetic_store


@pytest.fixture(scope="module")
def stats():
    routing = synthetic_store(n_languages=5, n_layers=8, n_experts=16, top_k=2, seed=1)
    return compute_stats(routing, reference=str(routing["language"].values[0]), top_m=6, theta=0.4)


def test_by_language_matches_the_stats(stats) -> None:
    frame = by_language(stats).set_index("language")
    g = str(stats["language"].values[2])
    assert frame.loc[g, "divergence_middle"] == pytest.approx(float(stats["divergence"].sel(language=g).isel(layer=[3, 4]).mean()))
    assert frame.loc[g, "exclusive_experts"] == int((stats["expert_class"].sel(language=g) == 2).sum())
    assert frame.loc[g, "tokens"] == int(stats["tokens"].sel(language=g))
    assert frame["divergence_middle"].iloc[0] == 0  # the reference against itself


def test_by_layer_zones_and_counts(stats) -> None:
    frame = by_layer(stats)
    assert frame["zone"].tolist() == ["shallow"] * 3 + ["middle"] * 2 + ["deep"] * 3
    cls = stats["expert_class"].values  # language, layer, expert
    assert frame["experts_exclusive"].tolist() == [int((cls[:, l] == 2).any(0).sum()) for l in range(8)]
    assert np.allclose(frame["specialisation"], stats["specialisation"].values)


def test_selection_and_training_rows(tmp_path: Path) -> None:
    sub = {"method": "rise", "target": "swh_Latn", "experts": [[0, 1], [3, 2]], "train_routers": False,
           "params_trainable": 50, "params_total": 1000}
    (tmp_path / "s.json").write_text(json.dumps(sub))
    row = selections([tmp_path / "s.json"]).iloc[0]
    assert (row["experts"], row["percent_trainable"]) == (2, 5.0)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "subnetwork.json").write_text(json.dumps(sub))
    pd.DataFrame({"step": [1, 2, 3], "epoch": [0, 0, 1], "loss": [3.0, 2.5, 2.0], "lr": [1, 1, 1]}).to_csv(adapter / "train_log.csv", index=False)
    row = trainings([adapter]).iloc[0]
    assert (row["steps"], row["loss_first"], row["loss_last"]) == (3, 3.0, 2.0)
