"""The noise floor: layer statistics and their untrained spread by hand, and the pipeline step on stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from polyroute.pipeline.noise_floor import noise_floor
from polyroute.pipeline.stats import configured_stats
from polyroute.routing.store import write_store
from polyroute.stats.noise_floor import FLOOR_COLUMNS, layer_statistics, noise_floor_table
from polyroute.stats.synthetic import synthetic_store

LANGS = ["eng_Latn", "fra_Latn", "swh_Latn"]
SETTINGS = {"log_base": "e", "distribution": "hard", "divergence_input": "used", "affinity_top_m": 15,
            "exclusive_threshold": 0.4}


def _stats(jsd: list[list[float]], spec: list[float], ent: list[list[float]], affinity: list[list[list[float]]],
           classes: list[list[list[int]]]) -> xr.Dataset:
    """A statistics Dataset with only the variables the noise floor reads (3 languages, 2 layers, 3 experts)."""
    ll = ("language", "layer")
    lle = ("language", "layer", "expert")
    coords = {"language": LANGS, "layer": [0, 1], "expert": [0, 1, 2]}
    return xr.Dataset(
        {
            "jsd": (ll, np.array(jsd)),
            "divergence": (ll, 2 * np.array(jsd)),
            "specialisation": (("layer",), np.array(spec)),
            "entropy_normalised": (ll, np.array(ent)),
            "affinity": (lle, np.array(affinity)),
            "expert_class": (lle, np.array(classes, dtype=np.int8)),
        },
        coords=coords,
    )


AFFINITY = [[[0.5, 0.3, 0.2]] * 2, [[0.2, 0.2, 0.6]] * 2, [[0.1, 0.45, 0.05], [0.3, 0.35, 0.1]]]
CLASSES = [[[2, 1, 1]] * 2, [[1, 1, 2]] * 2, [[0, 2, 0], [1, 1, 1]]]
MODEL = _stats([[0, 0], [0.2, 0.4], [0.6, 0.8]], [0.3, 0.5], [[0.4, 0.5], [0.6, 0.7], [0.8, 0.3]], AFFINITY, CLASSES)


def _value(table: pd.DataFrame, statistic: str, language: str, layer: int, column: str = "value") -> float:
    row = table[(table["statistic"] == statistic) & (table["language"] == language) & (table["layer"] == layer)]
    assert len(row) == 1, (statistic, language, layer)
    return float(row[column].iloc[0])


def test_layer_statistics_by_hand():
    rows = layer_statistics(MODEL, reference="eng_Latn", targets=["swh_Latn"])
    # divergences: mean over the non-reference languages (fra, swh)
    assert _value(rows, "jsd", "all", 0) == pytest.approx((0.2 + 0.6) / 2)
    assert _value(rows, "jsd", "all", 1) == pytest.approx((0.4 + 0.8) / 2)
    assert _value(rows, "divergence", "all", 1) == pytest.approx(2 * (0.4 + 0.8) / 2)
    assert "divergence_parallel" not in set(rows["statistic"])  # absent from the store: no row
    assert _value(rows, "specialisation", "all", 1) == 0.5
    # entropy: mean over every language, the reference too
    assert _value(rows, "entropy_normalised", "all", 0) == pytest.approx((0.4 + 0.6 + 0.8) / 3)
    assert _value(rows, "max_affinity", "swh_Latn", 0) == 0.45
    assert _value(rows, "max_affinity", "swh_Latn", 1) == 0.35
    assert _value(rows, "exclusive_experts", "swh_Latn", 0) == 1
    assert _value(rows, "exclusive_experts", "swh_Latn", 1) == 0
    assert len(rows) == 2 * 6


def test_noise_floor_table_spreads_over_seeds():
    floors = [
        _stats([[0, 0], [0.1, 0.2], [0.3, 0.0]], [0.1, 0.0], [[0.9] * 2] * 3, AFFINITY, CLASSES),
        _stats([[0, 0], [0.3, 0.2], [0.1, 0.4]], [0.3, 0.2], [[0.8] * 2] * 3, AFFINITY, CLASSES),
    ]
    table = noise_floor_table(MODEL, floors, reference="eng_Latn", targets=["swh_Latn"])
    assert list(table.columns) == FLOOR_COLUMNS
    assert list(table["statistic"].unique()) == ["jsd", "divergence", "specialisation", "entropy_normalised",
                                                 "max_affinity", "exclusive_experts"]  # the model's order
    assert (table["untrained_seeds"] == 2).all()
    # layer 0 JSD: seed means (0.1+0.3)/2 = 0.2 and (0.3+0.1)/2 = 0.2; layer 1: 0.1 and 0.3
    assert _value(table, "jsd", "all", 0, "model") == pytest.approx(0.4)
    assert _value(table, "jsd", "all", 0, "untrained_mean") == pytest.approx(0.2)
    assert _value(table, "jsd", "all", 1, "untrained_min") == pytest.approx(0.1)
    assert _value(table, "jsd", "all", 1, "untrained_max") == pytest.approx(0.3)
    assert _value(table, "specialisation", "all", 0, "untrained_mean") == pytest.approx(0.2)
    assert _value(table, "entropy_normalised", "all", 1, "untrained_min") == pytest.approx(0.8)


def test_noise_floor_table_refuses_missing_or_mismatched_floors():
    with pytest.raises(ValueError, match="at least one untrained"):
        noise_floor_table(MODEL, [], reference="eng_Latn", targets=[])
    shallower = MODEL.isel(layer=[0])
    with pytest.raises(ValueError, match="layer 1 is not in all of them"):
        noise_floor_table(MODEL, [MODEL, shallower], reference="eng_Latn", targets=[])
    with pytest.raises(ValueError, match="no language"):
        noise_floor_table(MODEL, [MODEL], reference="eng_Latn", targets=["hin_Deva"])


def _routing(tmp_path: Path, name: str, seed: int, model: str = "tiny") -> Path:
    store = synthetic_store(n_languages=3, n_layers=3, n_experts=6, top_k=2, seqs_per_language=4, seed=seed)
    store.attrs.update(model=model, dataset="flores_plus", split="dev")
    path = tmp_path / f"{name}.zarr"
    write_store(store, path)
    return path


def test_noise_floor_step_on_stores(tmp_path):
    model_routing = _routing(tmp_path, "model", seed=0)
    from polyroute.routing.store import open_store

    routing = open_store(model_routing)
    languages = [str(g) for g in routing["language"].values]
    stats_path = tmp_path / "stats.zarr"
    write_store(configured_stats(routing, SETTINGS, languages[0]), stats_path)
    untrained = [_routing(tmp_path, f"seed{s}", seed=10 + s) for s in range(2)]
    table_out, figure_out = tmp_path / "noise_floor.csv", tmp_path / "figures" / "noise_floor.png"
    noise_floor(stats=stats_path, untrained=untrained + [model_routing], settings=SETTINGS, reference=languages[0],
                targets=[languages[-1]], table_out=table_out, figure_out=figure_out)
    table = pd.read_csv(table_out)
    assert figure_out.exists() and (table["untrained_seeds"] == 3).all()
    # the model's own routing among the "untrained" ones: every value lies within the spread
    assert (table["untrained_min"] <= table["model"] + 1e-6).all()
    assert (table["model"] <= table["untrained_max"] + 1e-6).all()
    assert set(table["statistic"]) >= {"jsd", "divergence", "divergence_parallel", "specialisation"}

    other = _routing(tmp_path, "other", seed=1, model="another-model")
    with pytest.raises(ValueError, match="model is 'another-model'"):
        noise_floor(stats=stats_path, untrained=[other], settings=SETTINGS, reference=languages[0], targets=[],
                    table_out=tmp_path / "x.csv", figure_out=tmp_path / "x.png")
    assert not (tmp_path / "x.csv").exists()
