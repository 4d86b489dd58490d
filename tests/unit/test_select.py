"""Selectors (METHODS section 5), zones and budget split, parameter counts, the subnetwork file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from polyroute.models.info import ModelInfo
from polyroute.models.params import param_counts_from_config
from polyroute.select import (
    REGISTRY,
    allocate,
    read_subnetwork,
    rise_zones,
    select,
    validate_subnetwork,
    write_subnetwork,
)
from polyroute.stats import experts as ex


def store(count, languages, layers, tokens=None, gate_sum=None) -> xr.Dataset:
    count = np.asarray(count, dtype=np.int64)
    tokens = np.full(len(languages), 10) if tokens is None else np.asarray(tokens)
    coords = {"language": languages, "layer": layers, "expert": np.arange(count.shape[2])}
    data = {"count": (ex.DIMS, count), "tokens": ("language", tokens)}
    data["gate_sum"] = (ex.DIMS, count * 0.5 if gate_sum is None else gate_sum)
    return xr.Dataset(data, coords=coords, attrs={"top_k": 2})


def info_for(ds: xr.Dataset, **kw) -> ModelInfo:
    return ModelInfo(
        moe_layers=tuple(int(x) for x in ds["layer"].values),
        num_experts=ds.sizes["expert"],
        expert_params=kw.get("expert_params", 1000),
        router_params=kw.get("router_params", 40),
        total_params=kw.get("total_params", 10**7),
        model="toy/moe",
    )


# RISE worked example: MoE layers at model indices 0, 2, 4, 6 (positions 0..3); zones for L = 4 (RISE's
# code, Python's round): shallow positions [0, 2) = layers 0, 2; middle [2, 2) empty; deep [2, 4) = layers 4, 6.
# Languages t (target), x, y; 10 tokens each, top-2 (rows sum to 20).
RISE_COUNT = np.array(
    [
        # t: layer 0 uniform over e0, e1; layer 2 mostly e0; layer 4 shared pattern; layer 6 only e3
        [[10, 10, 0, 0], [16, 4, 0, 0], [6, 10, 4, 0], [0, 0, 0, 20]],
        [[10, 10, 0, 0], [0, 4, 16, 0], [6, 10, 0, 4], [10, 10, 0, 0]],
        [[10, 10, 0, 0], [0, 4, 0, 16], [6, 10, 4, 0], [10, 10, 0, 0]],
    ]
)
RISE_DS = store(RISE_COUNT, ["t", "x", "y"], [0, 2, 4, 6])
RISE_INFO = info_for(RISE_DS)


def test_rise_zones_and_rounding():
    assert [(z.name, z.start, z.stop) for z in rise_zones(48)] == [("shallow", 0, 18), ("middle", 18, 30), ("deep", 30, 48)]
    assert [(z.start, z.stop) for z in rise_zones(16)] == [(0, 6), (6, 10), (10, 16)]
    # Python's round, as RISE's code: 1.5 -> 2 and 2.5 -> 2 (half to even), so 4 layers have no middle zone
    assert [(z.start, z.stop) for z in rise_zones(4)] == [(0, 2), (2, 2), (2, 4)]
    # 12 layers: 4.5 -> 4 (half up would give 5), 7.5 -> 8
    assert [(z.start, z.stop) for z in rise_zones(12)] == [(0, 4), (4, 8), (8, 12)]
    assert [(z.start, z.stop) for z in rise_zones(1)] == [(0, 0), (0, 1), (1, 1)]
    with pytest.raises(ValueError, match="n_layers"):
        rise_zones(0)


@pytest.mark.parametrize(
    "budget, split, capacity, expected",
    [
        # RISE's code: floor(.35 K), floor(.25 K), the rest deep. The paper's K = 128 on Qwen3-30B-A3B:
        # 44.8 -> 44, 32 -> 32, deep 128 - 76 = 52 (largest remainders would give 45 / 32 / 51)
        (128, (0.35, 0.25), (999, 999, 999), [44, 32, 52]),
        # Phi-3.5-MoE: K = 16 with ratios .125 / .6875: 2, 11, deep 3
        (16, (0.125, 0.6875), (99, 99, 99), [2, 11, 3]),
        # 10: 3.5 -> 3, 2.5 -> 2, deep 5
        (10, (0.35, 0.25), (99, 99, 99), [3, 2, 5]),
        # 3: 1.05 -> 1, .75 -> 0, deep 2: no minimum per zone in their code
        (3, (0.35, 0.25), (99, 99, 99), [1, 0, 2]),
        # 10 with shallow capacity 1: quotas 3, 2, 5; 2 spill to middle/deep by .25:.40 -> .77, 1.23 -> 1 + 1
        (10, (0.35, 0.25), (1, 99, 99), [1, 3, 6]),
        # an empty zone passes its quota on: 5 -> 1, 1, 3; shallow's 1 goes to deep (.25:.40 -> .38, .62)
        (5, (0.35, 0.25), (0, 99, 99), [0, 1, 4]),
    ],
)
def test_allocate_floor_as_rises_code(budget, split, capacity, expected):
    got = allocate(budget, split, capacity)
    assert got == expected
    assert got == allocate(budget, split, capacity, "floor")
    assert all(0 <= g <= c for g, c in zip(got, capacity))


@pytest.mark.parametrize(
    "budget, split, capacity, expected",
    [
        (128, (0.35, 0.25), (999, 999, 999), [45, 32, 51]),
        # 10 x (.35, .25, .4) = 3.5, 2.5, 4: floors 3, 2, 4; the tied .5 remainders go to the earlier zone
        (10, (0.35, 0.25), (99, 99, 99), [4, 2, 4]),
        # 3 -> 1.05, .75, 1.2: floors 1, 0, 1, remainder to middle
        (3, (0.35, 0.25), (99, 99, 99), [1, 1, 1]),
        # 2 -> .7, .5, .8: remainders to deep then shallow; the budget cannot cover three zones
        (2, (0.35, 0.25), (99, 99, 99), [1, 0, 1]),
        # 10 with shallow capacity 1: 3 spill to middle/deep by .25:.40 -> 1.15, 1.85 -> 1 + 2
        (10, (0.35, 0.25), (1, 99, 99), [1, 3, 6]),
        # at least one per zone: 4 x (.05, .05, .9) = .2, .2, 3.6 -> 0, 0, 4, then 1 each from deep
        (4, (0.05, 0.05, 0.9), (99, 99, 99), [1, 1, 2]),
        # a zone with share 0 (an ablation) gets nothing, even when the others are full
        (10, (0.5, 0.0, 0.5), (3, 99, 4), [3, 0, 4]),
        # an empty zone passes its share on
        (5, (0.35, 0.25), (0, 99, 99), [0, 2, 3]),
    ],
)
def test_allocate_largest_remainder(budget, split, capacity, expected):
    got = allocate(budget, split, capacity, "largest-remainder")
    assert got == expected
    assert all(0 <= g <= c for g, c in zip(got, capacity))


def test_allocate_rejects_bad_split():
    with pytest.raises(ValueError, match="split"):
        allocate(5, (0.7, 0.5), (9, 9, 9))
    with pytest.raises(ValueError, match="budget_rounding"):
        allocate(5, (0.35, 0.25), (9, 9, 9), "round")


def test_rise_worked_example_four_layers_no_middle_zone():
    # L = 4: RISE's code rounds the bounds 1.5 and 2.5 to 2 and 2 (Python's round), so shallow = layers
    # 0, 2 and deep = layers 4, 6; the middle zone is empty. Budget 4 -> quotas floor(1.4) = 1,
    # floor(1.0) = 1, deep 2; the middle's 1 spills by .35:.40 (.47, .53) to deep: quotas 1, 0, 3.
    # Spec = S (1 + 10 a_t), candidates = experts t routes to:
    #   layer 0: t, x, y alike: S = 1, a_t = 1 -> 11 (e0, e1); layer 2: a_t = (1.6, .4), abar = (.53, .4)
    #   -> S = (3, 1) -> 51, 5; layer 4: a_t = (.6, 1, .4), abar = (.6, 1, .27) -> 7, 11, 1.5 x 5 = 7.5;
    #   layer 6: t uses only e3, S = 3, a_t = 2 -> 63.
    # shallow takes 51 (2, 0); deep takes 63 (6, 3), 11 (4, 1), 7.5 (4, 2).
    d = select("rise", RISE_DS, target="t", settings={"budget": 4}, model_info=RISE_INFO)
    assert d["experts"] == [[2, 0], [4, 1], [4, 2], [6, 3]]
    assert d["budget"] == 4
    assert d["settings"]["zones"] == {
        "shallow": {"layers": [0, 2], "selected": 1},
        "middle": {"layers": [], "selected": 0},
        "deep": {"layers": [4, 6], "selected": 3},
    }
    assert d["settings"]["budget_rounding"] == "floor"
    assert d["params_trainable"] == 4 * 1000
    assert d["settings"]["languages"] == ["t", "x", "y"]
    # the scores used agree with stats.experts
    spec = ex.rise_scores(RISE_DS["count"] / RISE_DS["tokens"], "t", alpha=10.0)["spec"]
    assert spec.sel(layer=2, expert=0) == pytest.approx(51.0)
    assert spec.sel(layer=4, expert=2) == pytest.approx(7.5)
    assert spec.sel(layer=6, expert=3) == pytest.approx(63.0)
    # train_routers adds the routers of the layers holding selected experts: 2, 4, 6
    d2 = select("rise", RISE_DS, target="t", settings={"budget": 4, "train_routers": True}, model_info=RISE_INFO)
    assert d2["params_trainable"] == 4 * 1000 + 3 * 40


# Five MoE layers (0, 2, 4, 6, 8): round(1.875) = 2, round(3.125) = 3, so shallow = 0, 2; middle = 4;
# deep = 6, 8. Layer 8: t and x route to e0, e1, y to e2, e3.
RISE5_DS = store(np.concatenate([RISE_COUNT, [[[10, 10, 0, 0]], [[10, 10, 0, 0]], [[0, 0, 10, 10]]]], axis=1),
                 ["t", "x", "y"], [0, 2, 4, 6, 8])


def test_rise_worked_example_floor_quotas_and_spill():
    # Budget 8 -> floor(2.8) = 2 shallow, floor(2.0) = 2 middle, deep 4. Deep candidates: (6, 3) 63 and
    # layer 8's e0, e1 (a_t = 1, abar = .67: S = 1.5 -> 16.5): 3 < 4, so 1 spills to shallow and middle
    # by .35:.25 (.58, .42) -> shallow 3: 51 (2, 0), then the 11-tie at layer 0 (e0, e1).
    # Middle Ovlp = O (1 + 10 abar) at layer 4: e1 used equally (O = 1, abar 1) -> 11; e0 (abar .6) -> 7;
    # e2 (.4, 0, .4: CV = sqrt(2)/2) -> 3.67 / 1.71 = 2.15; takes e1, e0.
    d = select("rise", RISE5_DS, target="t", settings={"budget": 8}, model_info=info_for(RISE5_DS))
    assert d["experts"] == [[0, 0], [0, 1], [2, 0], [4, 0], [4, 1], [6, 3], [8, 0], [8, 1]]
    assert d["settings"]["zones"] == {
        "shallow": {"layers": [0, 2], "selected": 3},
        "middle": {"layers": [4], "selected": 2},
        "deep": {"layers": [6, 8], "selected": 3},
    }
    ovlp = ex.rise_scores(RISE5_DS["count"] / RISE5_DS["tokens"], "t", alpha=10.0)["ovlp"]
    assert ovlp.sel(layer=4).values[:3] == pytest.approx([7.0, 11.0, (1 + 10 * 0.8 / 3) / (1 + 2**0.5 / 2)])


def test_rise_default_budget_and_shortfall(caplog):
    # 16 experts: 2% -> 0.32 -> at least one per non-empty zone (shallow, deep) = 2: quotas 0, 0, 2
    d = select("rise", RISE_DS, target="t", settings=None, model_info=RISE_INFO)
    assert d["budget"] == 2 and d["experts"] == [[4, 1], [6, 3]]
    # t routes to 8 experts in all: a budget of 10 selects those 8 and warns
    d = select("rise", RISE_DS, target="t", settings={"budget": 10}, model_info=RISE_INFO)
    assert len(d["experts"]) == 8 and d["budget"] == 10
    assert "only 8 experts eligible" in caplog.text


def big_store(seed=0, G=4, L=8, E=16):
    rng = np.random.default_rng(seed)
    count = rng.integers(0, 30, size=(G, L, E))
    count[0, :, ::4] = 0
    langs = ["tgt", "eng", "fra", "deu"]
    return store(count, langs, list(range(1, 2 * L, 2)), gate_sum=count * rng.random((G, L, E)))


def test_random_matches_rise_budget_and_zones_and_is_seeded():
    ds = big_store()
    info = info_for(ds)
    rise = select("rise", ds, target="tgt", settings={"budget": 10}, model_info=info)
    a, b, c = (select("random", ds, target="tgt", settings={"budget": 10, "seed": s}, model_info=info) for s in (0, 0, 1))
    assert a == b
    assert a["experts"] != c["experts"]
    for d in (a, c):
        assert len(d["experts"]) == 10 == d["budget"]
        assert d["settings"]["zones"] == rise["settings"]["zones"]
        for name, zone in d["settings"]["zones"].items():
            in_zone = [p for p in d["experts"] if p[0] in zone["layers"]]
            assert len(in_zone) == zone["selected"], name


def _target_share(ds: xr.Dataset, experts, layers) -> float:
    freq = ds["count"].sel(language="tgt") / ds["tokens"].sel(language="tgt")
    return float(sum(freq.sel(layer=l, expert=e) for l, e in experts if l in layers))


def test_random_matched_matches_rise_budget_zones_and_target_share_outside_rise():
    # the target uses every expert about as much; the others' counts decide which are specific
    ds = big_store()
    ds["count"].loc[{"language": "tgt"}] = np.random.default_rng(5).integers(8, 13, size=(8, 16))
    info = info_for(ds)
    rise = select("rise", ds, target="tgt", settings={"budget": 10}, model_info=info)
    plain = select("random", ds, target="tgt", settings={"budget": 10}, model_info=info)
    a, b, c = (select("random-matched", ds, target="tgt", settings={"budget": 10, "seed": s}, model_info=info)
               for s in (0, 0, 1))
    assert a == b and a["experts"] != c["experts"]
    rise_set = {tuple(p) for p in rise["experts"]}
    for d in (a, c):
        assert len(d["experts"]) == 10 == d["budget"]
        assert d["settings"]["zones"] == rise["settings"]["zones"]
        assert not rise_set & {tuple(p) for p in d["experts"]}
        for name, zone in d["settings"]["zones"].items():
            in_zone = [p for p in d["experts"] if p[0] in zone["layers"]]
            assert len(in_zone) == zone["selected"], name
            goal = _target_share(ds, rise["experts"], zone["layers"])
            share = _target_share(ds, in_zone, zone["layers"])
            recorded = d["settings"]["matched"][name]
            assert recorded == pytest.approx({"target_share": goal, "share": share})
            assert share == pytest.approx(goal, rel=0.01), name
    # the plain baseline is much further from RISE's share than the matched one
    layers = [int(x) for x in ds["layer"].values]
    goal = _target_share(ds, rise["experts"], layers)
    assert abs(_target_share(ds, a["experts"], layers) - goal) < abs(_target_share(ds, plain["experts"], layers) - goal)


def test_random_matched_borrows_rise_settings():
    ds = big_store()
    d = select("random-matched", ds, target="tgt", model_info=info_for(ds))
    assert set(d["settings"]) >= {"budget", "split", "alpha", "seed", "matched"}
    assert REGISTRY["random-matched"].borrows == {"budget": "rise", "split": "rise", "budget_rounding": "rise",
                                                  "alpha": "rise"}


def test_chen_selectors_partition_the_targets_used_experts():
    ds = big_store(1)
    info = info_for(ds)
    excl = {tuple(p) for p in select("chen-exclusive", ds, target="tgt", model_info=info)["experts"]}
    shared = {tuple(p) for p in select("chen-shared", ds, target="tgt", model_info=info)["experts"]}
    w = ex.affinity(ds["count"], ds["tokens"], top_m=15).sel(language="tgt")
    used = {(int(l), int(e)) for l in ds["layer"].values for e in ds["expert"].values if w.sel(layer=l, expert=e) > 0}
    assert excl and shared and not excl & shared
    assert excl | shared <= used
    # what is left of the used experts is exclusive to another language
    cls = ex.expert_classes(ex.affinity(ds["count"], ds["tokens"]), 0.4)
    for l, e in used - excl - shared:
        assert (cls.sel(layer=l, expert=e) == ex.EXCLUSIVE).any()
    window = select("chen-exclusive", ds, target="tgt", settings={"layers": [13, 15]}, model_info=info)["experts"]
    assert {tuple(p) for p in window} == {p for p in excl if p[0] in (13, 15)}


def test_last_layer_high_resource_parent_seft_ssft():
    ds = big_store(2)
    info = info_for(ds)
    base = {"n": 2, "high_resource": ["eng", "fra"], "shared": False}
    # Khandelwal's rule: the gap among the high-resource languages; a low-resource target needs a parent
    with pytest.raises(ValueError, match="'tgt' is not among the compared languages .* no parent"):
        select("last-layer", ds, target="tgt", settings=base, model_info=info)
    with pytest.raises(ValueError, match="'tgt' -> 'deu'"):
        select("last-layer", ds, target="tgt", settings={**base, "parents": {"tgt": "deu"}}, model_info=info)
    seft = select("last-layer", ds, target="tgt", settings={**base, "parents": {"tgt": "fra"}}, model_info=info)
    le_fra = ex.language_experts_by_gap(ds["count"], 0.01, ["eng", "fra"]).sel(language="fra")
    want = [[l, e] for l in (13, 15) for e in range(16) if le_fra.sel(layer=l, expert=e)]
    assert want and seft["experts"] == want and seft["settings"]["owner"] == "fra"
    # a high-resource target takes its own
    eng = select("last-layer", ds, target="eng", settings=base, model_info=info)
    le_eng = ex.language_experts_by_gap(ds["count"], 0.01, ["eng", "fra"]).sel(language="eng")
    assert eng["experts"] == [[l, e] for l in (13, 15) for e in range(16) if le_eng.sel(layer=l, expert=e)]
    # SSFT adds the top 5 by mean activation over the high-resource languages
    ssft = select("last-layer", ds, target="tgt", settings={**base, "parents": {"tgt": "fra"}, "shared": True},
                  model_info=info)["experts"]
    sh = ex.shared_experts(ds["count"] / ds["tokens"], ["eng", "fra"], 5)
    want_shared = {(l, e) for l in (13, 15) for e in range(16) if sh.sel(layer=l, expert=e)}
    assert {tuple(p) for p in ssft} == {tuple(p) for p in want} | want_shared
    # gap_languages="all": every language competes, the target for its own experts
    every = select("last-layer", ds, target="tgt", settings={**base, "gap_languages": "all"}, model_info=info)
    le_all = ex.language_experts_by_gap(ds["count"], 0.01).sel(language="tgt")
    assert every["experts"] == [[l, e] for l in (13, 15) for e in range(16) if le_all.sel(layer=l, expert=e)]
    assert every["settings"]["owner"] == "tgt"


def test_esft_and_all_experts_full_none():
    ds = big_store(3)
    info = info_for(ds)
    esft = select("esft", ds, target="tgt", settings={"top_p": 0.3}, model_info=info)
    mask = ex.esft_gate_selection(ds["gate_sum"], ds["count"], ds["tokens"], "tgt", 0.3)
    assert esft["experts"] == [[int(l), int(e)] for l in mask["layer"].values for e in range(16) if mask.sel(layer=l, expert=e)]
    last = select("all-experts", None, target="tgt", model_info=info)
    assert last["experts"] == [[15, e] for e in range(16)] and last["params_trainable"] == 16 * 1000
    two = select("all-experts", ds, target="tgt", settings={"layers": [3, 1]}, model_info=info)
    assert [p[0] for p in two["experts"]] == [1] * 16 + [3] * 16
    full = select("full", None, target="tgt", model_info=info)
    assert full["params_trainable"] == full["params_total"] == 10**7
    assert full["extra_modules"] == ["*"] and full["train_routers"] and len(full["experts"]) == 128
    none = select("none", None, target="tgt", model_info=info)
    assert none["experts"] == [] and none["params_trainable"] == 0 and none["budget"] == 0


def test_every_selector_writes_a_valid_file(tmp_path):
    ds = big_store(4)
    info = info_for(ds)
    settings = {"last-layer": {"high_resource": ["eng"], "parents": {"tgt": "eng"}}}
    assert set(REGISTRY) >= {"rise", "chen-exclusive", "chen-shared", "last-layer", "esft", "random", "random-matched", "all-experts", "full", "none"}
    for method in REGISTRY:
        d = select(method, ds, target="tgt", settings=settings.get(method), model_info=info)
        path = write_subnetwork(d, tmp_path / method / "tgt.json")
        assert read_subnetwork(path, info) == d
        assert d["model"] == "toy/moe" and d["method"] == method
    text = (tmp_path / "full" / "tgt.json").read_text()
    assert "[1, 0],\n" in text  # one pair per line
    assert not list(tmp_path.rglob("*.tmp"))


def test_selector_defaults_come_from_the_config_schema():
    from polyroute.config import load_schema

    schema = load_schema()
    sections = schema["properties"]["selection"]["properties"]["methods"]["properties"]
    stats = schema["properties"]["stats"]["properties"]
    assert set(sections) == set(REGISTRY)  # every selector is configurable, every section has a selector
    for method, spec in REGISTRY.items():
        own = sections[method]["properties"]
        assert set(own) <= set(spec.settings), f"{method}: the schema has settings the selector ignores"
        for key, value in spec.defaults.items():
            if key in spec.borrows:
                assert value == sections[spec.borrows[key]]["properties"][key]["default"]
            elif key in own:
                assert value == own[key]["default"], (method, key)
            elif key in stats:
                assert value == stats[key]["default"] and key in spec.stats_keys, (method, key)
    assert REGISTRY["rise"].defaults["alpha"] == sections["rise"]["properties"]["alpha"]["default"]
    assert REGISTRY["last-layer"].stats_keys == ("language_gap", "shared_top", "high_resource")
    assert REGISTRY["chen-shared"].stats_keys == ("affinity_top_m", "exclusive_threshold")


@pytest.mark.parametrize(
    "method, target, settings, match",
    [
        ("nope", "tgt", None, "unknown selection method 'nope'"),
        ("rise", "tgt", {"budgte": 3}, r"rise: unknown setting\(s\) \['budgte'\]"),
        ("rise", "tgt", {"budget": 129}, "rise.budget=129 exceeds the model's 128 experts"),
        ("random", "tgt", {"budget": 0}, "random.budget=0"),
        ("rise", "xx", None, "target 'xx'"),
        ("rise", "tgt", {"languages": ["eng", "fra"]}, "target 'tgt' is not among"),
        ("rise", "tgt", {"languages": ["tgt", "zzz"]}, r"rise.languages=.*zzz"),
        ("rise", "tgt", {"split": [0.9, 0.5]}, r"rise.split=\[0.9, 0.5\]"),
        ("chen-shared", "tgt", {"layers": [2]}, r"chen-shared.layers=\[2\]"),
        ("all-experts", "tgt", {"layers": [99]}, "all-experts.layers"),
        ("last-layer", "tgt", {"n": 9, "shared": False}, "last-layer.n=9"),
        ("last-layer", "tgt", {"gap_languages": "all", "parents": {"tgt": "ita"}, "shared": False},
         "last-layer.parents: 'tgt' -> 'ita'"),
        ("last-layer", "tgt", {"gap_languages": "some"}, "last-layer.gap_languages='some'"),
        ("last-layer", "tgt", {"shared": True}, "needs stats.high_resource"),
        ("last-layer", "tgt", {"gap_languages": "all", "shared": True}, "needs high_resource"),
    ],
)
def test_bad_settings_are_one_line_errors(method, target, settings, match):
    ds = big_store()
    with pytest.raises(ValueError, match=match) as err:
        select(method, ds, target=target, settings=settings, model_info=info_for(ds))
    assert "\n" not in str(err.value)


def test_store_must_match_the_model():
    ds = big_store()
    info = info_for(ds)
    with pytest.raises(ValueError, match="layers"):
        select("rise", ds.isel(layer=slice(0, 4)), target="tgt", model_info=info)
    with pytest.raises(ValueError, match="experts per layer"):
        select("rise", ds.isel(expert=slice(0, 8)), target="tgt", model_info=info)
    with pytest.raises(ValueError, match="needs the routing store"):
        select("rise", None, target="tgt", model_info=info)
    with pytest.raises(ValueError, match="needs gate_sum"):
        select("esft", ds.drop_vars("gate_sum"), target="tgt", model_info=info)
    token_esft = select("esft", ds.drop_vars("gate_sum"), target="tgt", settings={"score": "token"}, model_info=info)
    assert token_esft["experts"]


# ---------------------------------------------------------------- the subnetwork file


def good_file() -> dict:
    return select("rise", RISE_DS, target="t", settings={"budget": 4}, model_info=RISE_INFO)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d.pop("budget"), "missing"),
        (lambda d: d.update(extra=1), "unknown"),
        (lambda d: d.update(experts=[[2, 0], [0, 0]]), "sorted"),
        (lambda d: d.update(experts=[[0, 0], [0, 0]]), "sorted"),
        (lambda d: d.update(experts=[[0, -1]]), "pairs"),
        (lambda d: d.update(train_routers="yes"), "train_routers"),
        (lambda d: d.update(params_trainable=10**9), "params_trainable"),
        (lambda d: d.update(method=""), "method"),
    ],
)
def test_validate_subnetwork(change, match, tmp_path):
    d = good_file()
    validate_subnetwork(d, RISE_INFO)
    change(d)
    with pytest.raises(ValueError, match=match):
        validate_subnetwork(d)
    # an invalid dict is never written, and an existing good file survives
    path = write_subnetwork(good_file(), tmp_path / "s.json")
    before = path.read_text()
    with pytest.raises(ValueError):
        write_subnetwork(d, path)
    assert path.read_text() == before and not list(tmp_path.glob("*.tmp"))


def test_read_subnetwork_checks_the_model(tmp_path):
    path = write_subnetwork(good_file(), tmp_path / "s.json")
    other = ModelInfo(moe_layers=(0, 2, 4), num_experts=4, expert_params=1000, router_params=40, total_params=10**7)
    with pytest.raises(ValueError, match=r"s.json: subnetwork experts \[\[6, 3\]\]"):
        read_subnetwork(path, other)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        read_subnetwork(tmp_path / "bad.json")
    d = json.loads(path.read_text())
    assert d == good_file()


# ---------------------------------------------------------------- parameter counts


def test_param_counts_golden_numbers():
    # Qwen3-30B-A3B (config.json values): the model card's 30.5B total, 3.3B active (8 of 128 experts)
    qwen = param_counts_from_config(
        dict(model_type="qwen3_moe", hidden_size=2048, num_hidden_layers=48, num_attention_heads=32,
             num_key_value_heads=4, head_dim=128, vocab_size=151936, moe_intermediate_size=768,
             num_experts=128, intermediate_size=6144, tie_word_embeddings=False, attention_bias=False,
             decoder_sparse_step=1, mlp_only_layers=[]),
        model="Qwen/Qwen3-30B-A3B",
    )
    assert qwen.expert_params == 3 * 2048 * 768 and qwen.router_params == 128 * 2048
    assert qwen.total_experts == 6144 and qwen.moe_layers == tuple(range(48))
    assert round(qwen.total_params / 1e9, 1) == 30.5
    active = qwen.total_params - 48 * (128 - 8) * qwen.expert_params
    assert active / 1e9 == pytest.approx(3.3, abs=0.06)  # 3.35B: "3.3B activated"
    # OLMoE-1B-7B: 6.9B total, 1.3B active (8 of 64)
    olmoe = param_counts_from_config(
        dict(model_type="olmoe", hidden_size=2048, num_hidden_layers=16, num_attention_heads=16,
             num_key_value_heads=16, vocab_size=50304, intermediate_size=1024, num_experts=64,
             tie_word_embeddings=False, attention_bias=False)
    )
    assert round(olmoe.total_params / 1e9, 1) == 6.9
    assert round((olmoe.total_params - 16 * 56 * olmoe.expert_params) / 1e9, 1) == 1.3
    # RISE's default budget on Qwen3-30B-A3B: 2% of 6144 = 123 experts, 0.58B trainable = 1.9%
    assert qwen.trainable(123) / qwen.total_params == pytest.approx(0.019, abs=5e-4)


def test_param_counts_errors():
    with pytest.raises(ValueError, match="model_type='llama'"):
        param_counts_from_config({"model_type": "llama"})
    with pytest.raises(ValueError, match="num_experts / num_local_experts / n_routed_experts"):
        param_counts_from_config({"model_type": "mixtral", "hidden_size": 8, "num_hidden_layers": 2, "vocab_size": 9})
    with pytest.raises(ValueError, match="no MoE layers"):
        ModelInfo(moe_layers=(), num_experts=4, expert_params=1, router_params=1, total_params=10)


TINY = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, vocab_size=50, intermediate_size=24)
MLA = dict(kv_lora_rank=8, qk_rope_head_dim=4, qk_nope_head_dim=4, v_head_dim=4, n_group=1, topk_group=1)
FAMILY_CONFIGS = {
    "qwen2_moe": dict(num_experts=4, moe_intermediate_size=8, shared_expert_intermediate_size=12, mlp_only_layers=[1]),
    "qwen3_moe": dict(num_experts=4, moe_intermediate_size=8, head_dim=6, mlp_only_layers=[0], decoder_sparse_step=1),
    "olmoe": dict(num_experts=4),
    "mixtral": dict(num_local_experts=4, tie_word_embeddings=True),
    "phimoe": dict(num_local_experts=4, attention_bias=True, lm_head_bias=True),
    "gpt_oss": dict(num_local_experts=4, head_dim=4),
    "deepseek_v2": dict(n_routed_experts=4, moe_intermediate_size=8, n_shared_experts=2, first_k_dense_replace=1, q_lora_rank=None, mlp_bias=True, **MLA),
    "deepseek_v3": dict(n_routed_experts=4, moe_intermediate_size=8, n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=6, attention_bias=True, **MLA),
}


@pytest.mark.slow
def test_param_counts_match_from_config_models():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.set_num_threads(1)
    for family, extra in FAMILY_CONFIGS.items():
        cfg = transformers.AutoConfig.for_model(family, num_experts_per_tok=2, **TINY, **extra)
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(cfg)
        pc = param_counts_from_config(cfg.to_dict())
        assert pc.total_params == sum(p.numel() for p in model.parameters()), family
        moe = [i for i, layer in enumerate(model.model.layers) if hasattr(layer.mlp, "experts")]
        assert list(pc.moe_layers) == moe, family
        block = model.model.layers[moe[0]].mlp
        assert pc.expert_params * pc.num_experts == sum(p.numel() for p in block.experts.parameters()), family
        router = block.gate if hasattr(block, "gate") else block.router
        assert pc.router_params == sum(p.numel() for p in router.parameters()), family


def test_select_package_does_not_import_torch():
    code = "import sys, polyroute.select, polyroute.stats.experts, polyroute.models.params; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_param_counts_record_round_trip():
    rec = json.loads(json.dumps({**RISE_INFO.to_record(), "unknown_key": "ignored"}))
    assert ModelInfo.from_record(rec) == RISE_INFO
    full = ModelInfo.from_record({**rec, "top_k": 2, "family": "qwen3_moe", "revision": "abc"})
    assert (full.top_k, full.family, full.revision) == (2, "qwen3_moe", "abc")
    assert ModelInfo.from_record(json.loads(json.dumps(full.to_record()))) == full
    with pytest.raises(ValueError, match="lacks"):
        ModelInfo.from_record({"moe_layers": [0]})


def test_parameter_counts_cover_the_adapters_model_types():
    from polyroute.models import SUPPORTED_MODEL_TYPES
    from polyroute.models.params import MODEL_TYPES

    assert sorted(MODEL_TYPES) == sorted(SUPPORTED_MODEL_TYPES)
