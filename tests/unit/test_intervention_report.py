"""The interventions' report: routing shift on the same sequences, steering sweeps and their collapse
point, language consistency in the changes table, and the step that writes the tables and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.spatial.distance import jensenshannon

from polyroute.evaluate.compare import intervention_changes
from polyroute.evaluate.sweep import Z95, collapse_point, sweep_means
from polyroute.routing.store import to_dataset, write_store
from polyroute.routing.synthetic import synthetic_shard
from polyroute.stats.shift import matched_counts, routing_shift, shift_table


def _store(seq_ids, seq_tokens, seq_count, top_k=1, language="eng_Latn") -> xr.Dataset:
    """A routing store of one language with the given per-sequence counts [S, L, E] (layers 0, 1)."""
    seq_count = np.asarray(seq_count, dtype=np.float32)
    S, L, E = seq_count.shape
    return xr.Dataset(
        {"count": (("language", "layer", "expert"), seq_count.sum(0, keepdims=True).astype(np.int64)),
         "tokens": (("language",), [int(np.sum(seq_tokens))]),
         "seq_count": (("sequence", "layer", "expert"), seq_count),
         "seq_id": (("sequence",), list(seq_ids)), "seq_language": (("sequence",), [language] * S),
         "seq_tokens": (("sequence",), list(seq_tokens))},
        coords={"language": [language], "layer": np.arange(L), "expert": np.arange(E)}, attrs={"top_k": top_k})


# base: s0 and s1 (2 tokens each) and s2 (1 token); k = 1, 3 experts, layers 0 and 1
BASE = _store(["s0", "s1", "s2"], [2, 2, 1], [[[2, 0, 0], [0, 2, 0]], [[0, 2, 0], [2, 0, 0]], [[0, 0, 1], [0, 0, 1]]])
# s0 and s1 again, with expert 1 of layer 0 promoted onto every token; layer 1 unchanged
SHIFTED = _store(["s0", "s1"], [2, 2], [[[0, 2, 0], [0, 2, 0]], [[0, 2, 0], [2, 0, 0]]])


def test_base_side_is_restricted_to_the_shifted_sequences() -> None:
    count, tokens = matched_counts(BASE, SHIFTED)
    assert tokens.values.tolist() == [4]  # s2 is left out
    assert count.sel(language="eng_Latn", layer=0).values.tolist() == [2, 2, 0]


def test_routing_shift_by_hand_and_against_scipy() -> None:
    shift = routing_shift(BASE, SHIFTED, [[0, 1]]).sel(language="eng_Latn")
    # layer 0: P = (1/2, 1/2, 0) -> Q = (0, 1, 0); M = (1/4, 3/4, 0)
    h_m = -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    assert float(shift["jsd"].sel(layer=0)) == pytest.approx(h_m - np.log(2) / 2)
    assert float(shift["jsd"].sel(layer=0)) == pytest.approx(jensenshannon([0.5, 0.5, 0], [0, 1, 0]) ** 2)
    assert float(shift["jsd"].sel(layer=1)) == pytest.approx(0.0)
    assert float(shift["edited_share_base"].sel(layer=0)) == pytest.approx(0.5)
    assert float(shift["edited_share_shifted"].sel(layer=0)) == pytest.approx(1.0)
    assert np.isnan(float(shift["edited_share_base"].sel(layer=1)))  # no edited expert there
    assert shift["edited_experts"].values.tolist() == [1, 0]
    table = shift_table({"x": routing_shift(BASE, SHIFTED, [[0, 1]])})
    assert table[["intervention", "language", "layer"]].values.tolist() == [["x", "eng_Latn", 0], ["x", "eng_Latn", 1]]


def test_sequences_that_differ_are_refused() -> None:
    with pytest.raises(ValueError, match="'s9'.*not in the base store"):
        matched_counts(BASE, _store(["s9"], [2], [[[2, 0, 0], [2, 0, 0]]]))
    with pytest.raises(ValueError, match="other token counts"):
        matched_counts(BASE, _store(["s0"], [3], [[[3, 0, 0], [3, 0, 0]]]))


def _changes(per_strength: dict[float, list[tuple[float, float, float]]], experiment="x") -> pd.DataFrame:
    """Steering rows: strength -> [(change, ci_low, ci_high) per language]."""
    rows = [{"variant": f"steer-{experiment}-{s:g}", "kind": "steer", "experiment": experiment, "strength": s,
             "task": "belebele", "metric": "acc", "language": f"l{g}", "change": c, "change_ci_low": lo,
             "change_ci_high": hi} for s, langs in per_strength.items() for g, (c, lo, hi) in enumerate(langs)]
    return pd.DataFrame(rows)


def test_sweep_mean_and_interval_by_hand() -> None:
    means = sweep_means(_changes({0.01: [(-0.1, -0.2, 0.0), (-0.3, -0.4, -0.2)], 0.02: [(0.0, -0.1, 0.1)] * 2}))
    row = means[means["strength"] == 0.01].iloc[0]
    se = 0.2 / (2 * Z95)  # each language's SE from its interval width
    half = Z95 * np.sqrt(2 * se**2) / 2
    assert row["mean_change"] == pytest.approx(-0.2)
    assert [row["mean_ci_low"], row["mean_ci_high"]] == pytest.approx([-0.2 - half, -0.2 + half])
    assert half == pytest.approx(0.1 / np.sqrt(2))
    single = _changes({0.5: [(0.1, 0.0, 0.2)]}, experiment="one")
    assert sweep_means(single).empty  # one strength is no sweep


def test_collapse_point_needs_every_larger_strength_worse() -> None:
    bad, fine = [(-0.3, -0.4, -0.2)] * 2, [(0.0, -0.1, 0.1)] * 2
    blip = sweep_means(_changes({0.01: bad, 0.022: fine, 0.03: bad, 0.04: bad}))
    assert collapse_point(blip) == 0.03  # the dip at 0.01 recovers, so it is no collapse
    assert collapse_point(sweep_means(_changes({0.01: bad, 0.03: fine}))) is None
    assert collapse_point(sweep_means(_changes({0.01: bad, 0.03: bad}))) == 0.01
    # perplexity-like: worse means a rise
    up = [(0.3, 0.2, 0.4)] * 2
    assert collapse_point(sweep_means(_changes({0.01: fine, 0.03: up})), higher_is_better=False) == 0.03
    assert collapse_point(sweep_means(_changes({0.01: fine, 0.03: up}))) is None


def _generation_result(variant: str, kind: str, flags: list[float], acc: list[float]) -> dict:
    items = [{"id": f"i{i}", "exact_match,flexible-extract": a, "language_consistency": f}
             for i, (a, f) in enumerate(zip(acc, flags))]
    return {"variant": {"name": variant, "kind": kind, "source": "results/demo/interventions/swh-late.json",
                        "strength": None}, "task": "mgsm_native_cot", "language": "swh_Latn",
            "metrics": {"exact_match,flexible-extract": float(np.mean(acc)),
                        "language_consistency": float(np.mean(flags))}, "items": items}


def test_changes_carry_language_consistency_where_measured() -> None:
    results = {("base", "mgsm_native_cot", "swh_Latn"): _generation_result("base", "base", [1, 1, 1, 0], [1, 0, 0, 0]),
               ("mask-swh-late", "mgsm_native_cot", "swh_Latn"): _generation_result("mask-swh-late", "mask",
                                                                                    [0, 1, 0, 0], [0, 0, 0, 0])}
    table = intervention_changes(results, resamples=100).set_index("metric")
    assert table.loc["language_consistency", "change"] == pytest.approx(0.25 - 0.75)
    assert table.loc["exact_match,flexible-extract", "change"] == pytest.approx(-0.25)
    assert set(table["experiment"]) == {"swh-late"}


def _write_result(root: Path, variant: str, kind: str, source: str, strength, language: str, acc: list[int]) -> Path:
    directory = root / variant / "belebele"
    directory.mkdir(parents=True, exist_ok=True)
    record = {"variant": {"name": variant, "kind": kind, "source": source, "strength": strength}, "task": "belebele",
              "language": language, "metrics": {"acc": float(np.mean(acc))}, "ci95": {}, "n_items": len(acc),
              "items": [{"id": f"{language}:{i}", "acc": a} for i, a in enumerate(acc)]}
    (directory / f"{language}.json").write_text(json.dumps(record))
    return directory


def test_report_step_writes_tables_and_figures(tmp_path: Path) -> None:
    from polyroute.pipeline.intervention_report import intervention_report

    layers, E = (0, 1, 2), 8
    write_store(to_dataset(synthetic_shard(seed=1, layers=layers, num_experts=E), {"model": "m"}), tmp_path / "routing.zarr")
    # the same routing on the first 2 sequences of each language: no shift at all
    subset = np.r_[0:2, 4:6, 8:10]
    write_store(to_dataset(synthetic_shard(seed=1, layers=layers, num_experts=E, sequences=subset), {"model": "m"}),
                tmp_path / "x.zarr")
    (tmp_path / "x.json").write_text(json.dumps({"name": "x", "kind": "mask", "language": "fra_Latn",
                                                 "layers": [2], "experts": [[2, 3]],
                                                 "settings": {"window": "late", "layers": None}}))
    dirs = set()
    for language in ("eng_Latn", "fra_Latn"):
        dirs.add(_write_result(tmp_path, "base", "base", "", None, language, [1] * 10))
        # steering s keeps every answer at 0.01 and loses every one at 0.03: collapse at 0.03
        dirs.add(_write_result(tmp_path, "steer-s-0.01", "steer", "s.json", 0.01, language, [1] * 10))
        dirs.add(_write_result(tmp_path, "steer-s-0.03", "steer", "s.json", 0.03, language, [0] * 10))
        dirs.add(_write_result(tmp_path, "mask-x", "mask", "x.json", None, language, [1, 0] * 5))
    outputs = {key: tmp_path / name for key, name in (
        ("changes_out", "changes.csv"), ("steering_out", "steering.csv"), ("shift_out", "shift.csv"),
        ("sweep_figure", "sweep.png"), ("masking_figure", "masking.png"), ("shift_figure", "shift.png"))}
    intervention_report(eval_dirs=sorted(dirs), routing=tmp_path / "routing.zarr", expert_sets=[tmp_path / "x.json"],
                        shift_stores=[tmp_path / "x.zarr"], bootstrap=100, **outputs)
    changes = pd.read_csv(outputs["changes_out"])
    assert changes.loc[changes["experiment"] == "x", "change"].tolist() == pytest.approx([-0.5, -0.5])
    steering = pd.read_csv(outputs["steering_out"])
    assert steering["mean_change"].tolist() == pytest.approx([0.0, -1.0])
    assert steering["collapse_point"].tolist() == [0.03, 0.03]
    shift = pd.read_csv(outputs["shift_out"])
    assert len(shift) == 3 * len(layers) and np.allclose(shift["jsd"], 0.0)
    late = shift[shift["layer"] == 2]
    assert np.allclose(late["edited_share_base"], late["edited_share_shifted"])
    assert all(path.stat().st_size > 0 for path in outputs.values())
