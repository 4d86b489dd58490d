"""The comparison step: per-layer statistics of several members on a common relative-depth axis,
values worked out by hand, incomparable members refused in one line, and the step's outputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from polyroute.stats.compare import (
    UNTRAINED,
    IncomparableMembers,
    Member,
    compare_members,
    comparison_tables,
    fisher_interval,
    relative_depth,
)

LANGS = ["eng_Latn", "fra_Latn", "rus_Cyrl"]
# hand JSDs (nats) between the languages, the same in every layer: eng-fra 0.2, eng-rus 0.5, fra-rus 0.4
PAIR_JSD = {("eng_Latn", "fra_Latn"): 0.2, ("eng_Latn", "rus_Cyrl"): 0.5, ("fra_Latn", "rus_Cyrl"): 0.4}


def _stats(count: np.ndarray, *, layers: list[int], divergence: np.ndarray | None = None, **attrs) -> xr.Dataset:
    """A hand-made statistics store: `count[language, layer, expert]` with top-1 routing, and the
    per-language statistics the comparison reads as stored."""
    n_lang, n_layer, n_exp = count.shape
    tokens = count.sum(axis=2)[:, 0]
    sim = np.ones((n_lang, n_lang, n_layer))
    for (a, b), value in PAIR_JSD.items():
        i, j = LANGS.index(a), LANGS.index(b)
        sim[i, j] = sim[j, i] = 1 - value / math.log(2)
    divergence = np.zeros((n_lang, n_layer)) if divergence is None else divergence
    coords = {"language": LANGS, "layer": layers, "expert": np.arange(n_exp)}
    return xr.Dataset(
        {
            "tokens": (("language",), tokens),
            "frequency": (("language", "layer", "expert"), count / tokens[:, None, None]),
            "similarity": (("language", "language_b", "layer"), sim),
            "divergence": (("language", "layer"), divergence),
            "jsd": (("language", "layer"), divergence / 2),
            "entropy_normalised": (("language", "layer"), np.full((n_lang, n_layer), 0.5)),
        },
        coords=coords | {"language_b": LANGS},
        attrs={"dataset": "flores_plus", "split": "dev", "reference_language": "eng_Latn",
               "distribution_source": "hard", "divergence_source": "used", "log_base": math.e, "thresholds": {"top_m": 15, "theta": 0.4},
               "num_experts": n_exp, "top_k": 1, "model": "m"} | attrs,
    )


def _two_layer_member() -> xr.Dataset:
    # layer 3: each language on its own expert (specialisation 1, three exclusive experts);
    # layer 7: every language spread evenly (specialisation 0, W = 1/3 <= 0.4: three shared experts)
    count = np.zeros((3, 2, 3))  # 30 tokens per language
    count[[0, 1, 2], 0, [0, 1, 2]] = 30
    count[:, 1, :] = 10
    divergence = np.array([[0.0, 0.0], [0.3, 0.1], [0.6, 0.2]])
    return _stats(count, layers=[3, 7], divergence=divergence)


def _three_layer_member(**attrs) -> xr.Dataset:
    count = np.full((3, 3, 4), 5.0)  # uniform: 20 tokens per language and layer over 4 experts
    return _stats(count, layers=[0, 1, 2], divergence=np.full((3, 3), 0.05), **attrs)


def test_relative_depth_is_the_moe_layer_position_over_the_last() -> None:
    assert relative_depth(5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert relative_depth(1).tolist() == [0.0]
    assert relative_depth(4)[1] == round(1 / 3, 6)


def test_members_share_the_union_depth_axis_and_keep_their_layer_indices() -> None:
    out = compare_members([Member("a", _two_layer_member(), step=100), Member("b", _three_layer_member(), step=200)])
    assert out["relative_depth"].values.tolist() == [0.0, 0.5, 1.0]
    assert out["layer"].sel(member="a").values.tolist() == [3, -1, 7]
    assert out["layer"].sel(member="b").values.tolist() == [0, 1, 2]
    assert np.isnan(out["specialisation"].sel(member="a", relative_depth=0.5))
    assert out["moe_layers"].values.tolist() == [2, 3] and out["step"].values.tolist() == [100.0, 200.0]


def test_statistics_match_hand_values() -> None:
    out = compare_members([Member("a", _two_layer_member()), Member("b", _three_layer_member())])
    a = out.sel(member="a")
    assert a["specialisation"].values[[0, 2]] == pytest.approx([1.0, 0.0], abs=1e-12)
    assert a["exclusive_experts"].values[[0, 2]].tolist() == [3, 0]
    assert a["shared_experts"].values[[0, 2]].tolist() == [0, 3]
    assert a["exclusive_share"].values[0] == pytest.approx(1.0)  # 3 of 3 experts
    assert a["exclusive"].sel(language="fra_Latn").values[[0, 2]].tolist() == [1, 0]
    # D from English averaged over French and Russian: (0.3 + 0.6) / 2, (0.1 + 0.2) / 2
    assert a["divergence_mean"].values[[0, 2]] == pytest.approx([0.45, 0.15])
    # JSD between languages: every pair (0.2 + 0.5 + 0.4) / 3; Latin pairs 0.2; cross-script (0.5 + 0.4) / 2
    assert a["jsd_between"].values[0] == pytest.approx(1.1 / 3)
    assert a["jsd_same_script"].values[0] == pytest.approx(0.2)
    assert a["jsd_cross_script"].values[0] == pytest.approx(0.45)
    b = out.sel(member="b")  # uniform routing over 4 experts: W = 1/3 everywhere, all shared
    assert b["specialisation"].values == pytest.approx([0, 0, 0], abs=1e-12)
    assert b["shared_experts"].values.tolist() == [4, 4, 4] and b["shared_experts_share"].values.tolist() == [1, 1, 1]
    # different expert counts: counts flagged as not comparable (shares are), JSD levels too
    assert out.attrs["counts_comparable"] == 0 and out.attrs["jsd_comparable"] == 0


def test_divergence_levels_are_flagged_when_routing_entropies_differ() -> None:
    alike = compare_members([Member("a", _two_layer_member()), Member("b", _three_layer_member())])
    assert alike.attrs["divergence_comparable"] == 1  # both 0.5
    flat = _three_layer_member()
    flat["entropy_normalised"] = flat["entropy_normalised"] + 0.4  # near-uniform routing: D inflates
    apart = compare_members([Member("a", _two_layer_member()), Member("b", flat)])
    assert apart.attrs["divergence_comparable"] == 0
    assert apart["entropy_normalised_overall"].values == pytest.approx([0.5, 0.9])


def test_set_dependent_statistics_recomputed_equal_the_stored_ones_on_the_same_languages() -> None:
    from polyroute.stats.compute import compute_stats
    from polyroute.stats.experts import EXCLUSIVE
    from polyroute.stats.synthetic import synthetic_store

    routing = synthetic_store(n_languages=4, n_layers=5, seed=3)
    routing.attrs.update(dataset="flores_plus", split="dev")
    stats = compute_stats(routing, reference=str(routing["language"].values[0]))
    out = compare_members([Member("x", stats), Member("y", stats.copy())])
    assert out["specialisation"].sel(member="x").values == pytest.approx(stats["specialisation"].values)
    exclusive = (stats["expert_class"] == EXCLUSIVE).sum("expert").transpose("language", "layer")
    assert (out["exclusive"].sel(member="x").values == exclusive.values).all()
    assert out.attrs["counts_comparable"] == 1


@pytest.mark.parametrize("change,named", [
    ({"dataset": "belebele"}, "dataset"),
    ({"split": "devtest"}, "split"),
    ({"reference_language": "fra_Latn"}, "reference_language"),
    ({"distribution_source": "soft"}, "distribution_source"),
    ({"divergence_source": "hard"}, "divergence_source"),
    ({"thresholds": {"top_m": 15, "theta": 0.12}}, "thresholds"),
])
def test_incomparable_members_are_refused_in_one_line(change, named) -> None:
    with pytest.raises(IncomparableMembers, match=named) as info:
        compare_members([Member("a", _two_layer_member()), Member("b", _three_layer_member(**change))])
    assert "\n" not in str(info.value) and "'b'" in str(info.value)


def test_members_without_a_common_language_besides_the_reference_are_refused() -> None:
    only_english = _three_layer_member().sel(language=["eng_Latn"], language_b=["eng_Latn"])
    with pytest.raises(IncomparableMembers, match="at least one other"):
        compare_members([Member("a", _two_layer_member()), Member("b", only_english)])
    with pytest.raises(IncomparableMembers, match="named twice"):
        compare_members([Member("a", _two_layer_member()), Member("a", _three_layer_member())])
    with pytest.raises(IncomparableMembers, match="at least two"):
        compare_members([Member("a", _two_layer_member())])


def test_fisher_interval_matches_the_formula_by_hand() -> None:
    # r = 0.5, n = 12: z = atanh(0.5) = 0.5493, half width 1.96 / 3 = 0.6533 -> tanh(-0.1040), tanh(1.2026)
    assert fisher_interval(0.5, 12) == pytest.approx((-0.10364, 0.83445), abs=1e-5)
    assert all(math.isnan(v) for v in fisher_interval(0.5, 3))


def test_score_correlation_per_member_with_its_interval() -> None:
    # 4 MoE layers: no RISE middle zone (round(1.5) = round(2.5) = 2), so D is averaged over every layer
    langs = [f"l{i:02d}_Latn" for i in range(8)]
    rng = np.random.default_rng(0)
    count = rng.integers(1, 9, size=(8, 4, 4)).astype(float)
    count *= (40 / count.sum(axis=2))[:, :, None]
    divergence = np.tile(np.arange(8.0)[:, None] / 10, (1, 4))
    stats = xr.Dataset(
        {"tokens": (("language",), np.full(8, 40.0)), "frequency": (("language", "layer", "expert"), count / 40),
         "similarity": (("language", "language_b", "layer"), np.ones((8, 8, 4))),
         "divergence": (("language", "layer"), divergence), "jsd": (("language", "layer"), divergence),
         "entropy_normalised": (("language", "layer"), np.ones((8, 4))),
         "score": (("language",), 1.0 - np.arange(8.0) / 10)},
        coords={"language": langs, "language_b": langs, "layer": [0, 1, 2, 3], "expert": np.arange(4)},
        attrs=_three_layer_member().attrs | {"reference_language": langs[0]})
    out = compare_members([Member("scored", stats), Member("plain", stats.drop_vars("score"))])
    scored = out["score_correlation"].sel(member="scored")
    assert float(scored.sel(statistic="pearson_r")) == pytest.approx(-1.0)  # score falls as D rises
    assert float(scored.sel(statistic="n")) == 7  # the reference is left out
    assert float(out["score_correlation"].sel(member="plain", statistic="n")) == 0


def test_tables_hold_each_members_own_layers_only() -> None:
    out = compare_members([Member("a", _two_layer_member(), step=1),
                           Member("u", _three_layer_member(), kind=UNTRAINED, step=0)])
    tables = comparison_tables(out)
    assert set(tables) == {"members", "layer", "language_layer", "score_correlation"}
    assert tables["members"]["member"].tolist() == ["a", "u"] and tables["members"]["kind"].tolist() == ["model", UNTRAINED]
    layer = tables["layer"]
    assert sorted(layer.loc[layer["member"] == "a", "layer"]) == [3, 7] and len(layer) == 5
    assert len(tables["language_layer"]) == 5 * 3


def test_compare_step_writes_store_tables_and_figures(tmp_path) -> None:
    from polyroute.pipeline.compare import compare
    from polyroute.plots.compare import COMPARE_FIGURES
    from polyroute.routing.store import open_store, write_store
    from polyroute.stats.compute import compute_stats
    from polyroute.stats.synthetic import synthetic_store

    records = {}
    for i, (layers, step) in enumerate([(4, 10), (6, 20)]):
        routing = synthetic_store(n_languages=4, n_layers=layers, seed=i)
        routing.attrs.update(dataset="flores_plus", split="dev", training_step=step)
        write_store(compute_stats(routing, reference=str(routing["language"].values[0])), tmp_path / f"s{i}.zarr")
        records[f"run/r{i}"] = {"run": "run", "revision": f"r{i}", "stats": str(tmp_path / f"s{i}.zarr"),
                                "step": None, "tokens": None}
    figures = {name: str(tmp_path / "figures" / f"{name}.png") for name in COMPARE_FIGURES}
    compare(members=records, untrained=[], settings={}, reference="x", run="run", store_out=tmp_path / "c.zarr",
            tables_out=tmp_path / "tables", figures=figures)
    stored = open_store(tmp_path / "c.zarr")
    assert stored["step"].values.tolist() == [10.0, 20.0]  # the stores' own training steps
    assert stored["relative_depth"].size == len(set(relative_depth(4)) | set(relative_depth(6)))
    assert pd.read_csv(tmp_path / "tables" / "members.csv")["revision"].tolist() == ["r0", "r1"]
    assert all((tmp_path / "figures" / f"{name}.png").stat().st_size > 0 for name in COMPARE_FIGURES)


def test_compare_step_refuses_before_writing_anything(tmp_path) -> None:
    from polyroute.pipeline.compare import compare
    from polyroute.routing.store import write_store

    write_store(_two_layer_member(), tmp_path / "a.zarr")
    write_store(_three_layer_member(dataset="belebele"), tmp_path / "b.zarr")
    records = {n: {"stats": str(tmp_path / f"{n}.zarr")} for n in ("a", "b")}
    with pytest.raises(IncomparableMembers, match="dataset"):
        compare(members=records, untrained=[], settings={}, reference="eng_Latn", run="r", store_out=tmp_path / "c.zarr",
                tables_out=tmp_path / "tables", figures={})
    assert not (tmp_path / "c.zarr").exists() and not (tmp_path / "tables").exists()
