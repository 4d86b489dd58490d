"""Expert sets from routing stores and the depth-scaled windows, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from polyroute.interventions.expert_sets import (exclusive_experts, expert_list, shared_source_experts,
                                                 task_experts, window_layers)


def store(counts: dict[str, list[list[int]]], tokens: dict[str, int], layers: list[int]) -> xr.Dataset:
    langs = list(counts)
    return xr.Dataset(
        {"count": (("language", "layer", "expert"), np.array([counts[g] for g in langs], dtype=np.int64)),
         "tokens": (("language",), np.array([tokens[g] for g in langs], dtype=np.int64))},
        coords={"language": langs, "layer": layers, "expert": np.arange(len(counts[langs[0]][0]))},
        attrs={"top_k": 2},
    )


def test_windows_scale_by_depth_from_48_layers():
    assert window_layers("early", range(48)) == [0, 1, 2, 3, 4]
    assert window_layers("middle", range(48)) == [22, 23, 24, 25, 26]
    assert window_layers("late", range(48)) == [43, 44, 45, 46, 47]
    assert window_layers("steer", range(48)) == list(range(10, 40))
    # 8 MoE layers (the demo): early [0, 0.83) -> [0, 1); middle [3.67, 4.5) -> [4, 5) (round half up);
    # late [7.17, 8) -> [7, 8); steer [1.67, 6.67) -> [2, 7)
    eight = list(range(8))
    assert [window_layers(w, eight) for w in ("early", "middle", "late")] == [[0], [4], [7]]
    assert window_layers("steer", eight) == [2, 3, 4, 5, 6]
    # MoE layers 1..4 (a first dense layer): positions are scaled, model indices returned; never empty
    moe = [1, 2, 3, 4]
    assert [window_layers(w, moe) for w in ("early", "middle", "late", "steer")] == [[1], [3], [4], [2, 3]]
    assert window_layers([0, 24], moe) == [1, 2]
    with pytest.raises(ValueError, match="window 'deep' is not one of early, middle, late, steer"):
        window_layers("deep", moe)
    with pytest.raises(ValueError, match="must satisfy 0 <= start < stop <= 48"):
        window_layers([30, 10], moe)


def test_task_experts_by_hand():
    layers = [0, 1, 2]
    # English in-task: 10 tokens, k = 2; general text: 20 tokens
    task = store({"eng_Latn": [[10, 0, 5, 5], [9, 1, 6, 4], [2, 8, 5, 5]]}, {"eng_Latn": 10}, layers)
    general = store({"eng_Latn": [[4, 12, 12, 12], [6, 10, 12, 12], [4, 16, 10, 10]],
                     "fra_Latn": [[20, 20, 0, 0]] * 3}, {"eng_Latn": 20, "fra_Latn": 20}, layers)
    mask, delta = task_experts(task, general, layers=[1, 2], tau=0.3)
    # layer 0: [1 - .2, 0 - .6, .5 - .6, .5 - .6] = [.8, -.6, -.1, -.1] (outside the window)
    # layer 1: [.9 - .3, .1 - .5, .6 - .6, .4 - .6] = [.6, -.4, 0, -.2]; layer 2: [0, 0, 0, 0]
    np.testing.assert_allclose(delta.values, [[0.8, -0.6, -0.1, -0.1], [0.6, -0.4, 0.0, -0.2], [0.0, 0.0, 0.0, 0.0]])
    assert expert_list(mask, delta) == ([[1, 0]], [pytest.approx(0.6)])
    assert expert_list(task_experts(task, general, layers=layers, tau=0.3)[0], delta)[0] == [[0, 0], [1, 0]]
    with pytest.raises(ValueError, match="task routing: language 'fra_Latn' is not in the routing store"):
        task_experts(task, general, layers=layers, language="fra_Latn")
    with pytest.raises(ValueError, match=r"layers \[5\] are not in the routing store"):
        task_experts(task, general, layers=[5])


def chen_store():
    # one layer, k = 2, 4 tokens each: f_eng = [1, .5, .5, 0], f_fra = [.25, .75, 0, 1]
    return store({"eng_Latn": [[4, 2, 2, 0]], "fra_Latn": [[1, 3, 0, 4]]}, {"eng_Latn": 4, "fra_Latn": 4}, [3])


def test_shared_source_experts_by_hand():
    # sources eng and fra: W_eng = f_eng / (f_eng + f_fra) = [.8, .4, 1, 0]: only expert 1 lies in (0.3, 0.7)
    pair = ("eng_Latn", "fra_Latn")
    mask, w = shared_source_experts(chen_store(), "eng_Latn", layers=[3], top_m=4, sources=pair)
    np.testing.assert_allclose(w.values, [[0.8, 0.4, 1.0, 0.0]])
    assert expert_list(mask, w) == ([[3, 1]], [pytest.approx(0.4)])
    # top_m = 2 keeps f_eng's two largest (1 and the tie .5, .5: all three kept) and f_fra's 1 and .75
    _, w2 = shared_source_experts(chen_store(), "fra_Latn", layers=[3], top_m=2, sources=pair)
    np.testing.assert_allclose(w2.values, [[0.0, 0.6, 0.0, 1.0]])


def chen_steering_store():
    # one layer, k = 2, 10 tokens each (rows sum to 20):
    # f_eng = [1, .5, .3, .2, 0, 0], f_zho = [.2, .4, .4, 0, 1, 0], f_swh = [0, .5, .5, 0, 0, 1]
    return store({"eng_Latn": [[10, 5, 3, 2, 0, 0]], "zho_Hans": [[2, 4, 4, 0, 10, 0]], "swh_Latn": [[0, 5, 5, 0, 0, 10]]},
                 {"eng_Latn": 10, "zho_Hans": 10, "swh_Latn": 10}, [7])


def test_chen_steering_set_as_their_scripts():
    # Chen's steering (the defaults): W over the sources eng and zho only, top m per language and layer.
    # m = 3: eng keeps e0, e1, e2 (1, .5, .3); zho keeps e4, e1, e2 (1, .4, .4).
    # W_eng = [1, .5/.9, .3/.7, 0, 0, 0] = [1, 5/9, 3/7, 0, 0, 0]: 0.3 < W_eng < 0.7 -> e1, e2, s = W_eng.
    mask, w = shared_source_experts(chen_steering_store(), "eng_Latn", layers=[7], top_m=3)
    np.testing.assert_allclose(w.values, [[1.0, 5 / 9, 3 / 7, 0.0, 0.0, 0.0]])
    assert expert_list(mask, w) == ([[7, 1], [7, 2]], [pytest.approx(5 / 9), pytest.approx(3 / 7)])
    # a tie at the m-th affinity: m = 2, zho's .4, .4 (e1, e2) share the 2nd place and both are kept;
    # eng keeps e0, e1: W_eng = [1, 5/9, 0, 0, 0, 0] (e2 is zho's alone) -> the set is e1 only
    mask2, w2 = shared_source_experts(chen_steering_store(), "eng_Latn", layers=[7], top_m=2)
    np.testing.assert_allclose(w2.values, [[1.0, 5 / 9, 0.0, 0.0, 0.0, 0.0]])
    assert expert_list(mask2, w2)[0] == [[7, 1]]
    # zho as the source: W_zho = 1 - W_eng where either keeps the expert; the same shared experts
    mask_zh, w_zh = shared_source_experts(chen_steering_store(), "zho_Hans", layers=[7], top_m=3)
    assert expert_list(mask_zh, w_zh) == ([[7, 1], [7, 2]], [pytest.approx(4 / 9), pytest.approx(4 / 7)])
    # polyroute's earlier convention, W over every language (swh keeps e5, e1, e2): W_eng(e1) = .5/1.4 = 5/14
    # is in range, W_eng(e2) = .3/1.2 = .25 is not; the two conventions share one expert here
    mask_all, w_all = shared_source_experts(chen_steering_store(), "eng_Latn", layers=[7], top_m=3, sources=None)
    assert expert_list(mask_all, w_all) == ([[7, 1]], [pytest.approx(5 / 14)])
    with pytest.raises(ValueError, match=r"steering sources \['eng_Latn', 'zho_Hans'\] do not include the source 'swh_Latn'"):
        shared_source_experts(chen_steering_store(), "swh_Latn", layers=[7])
    with pytest.raises(ValueError, match=r"steering sources \['zho_Hans'\] are not in the routing store"):
        shared_source_experts(chen_store(), "eng_Latn", layers=[3])


def test_exclusive_experts_by_hand():
    # exclusive to eng: W_eng > 0.4 -> experts 0 (.8) and 2 (1); to fra: W_fra = [.2, .6, 0, 1] -> 1 and 3
    mask, w = exclusive_experts(chen_store(), "eng_Latn", layers=[3], top_m=4, theta=0.4)
    assert expert_list(mask, w)[0] == [[3, 0], [3, 2]]
    mask, w = exclusive_experts(chen_store(), "fra_Latn", layers=[3], top_m=4, theta=0.4)
    assert expert_list(mask, w)[0] == [[3, 1], [3, 3]]


def test_expert_list_caps_each_layer_by_score():
    mask = xr.DataArray([[True, True, True], [False, True, False]], dims=("layer", "expert"),
                        coords={"layer": [4, 5], "expert": [0, 1, 2]})
    scores = mask.copy(data=[[0.5, 0.9, 0.5], [0.0, 0.1, 0.0]])
    assert expert_list(mask, scores, max_per_layer=2) == ([[4, 0], [4, 1], [5, 1]], [0.5, 0.9, 0.1])


def test_expert_set_files_from_stores(tmp_path):
    """The pipeline step writes each recipe's set, capped so the top-k can honour it, with its settings."""
    import json

    from polyroute.interventions.experiments import experiment
    from polyroute.pipeline.interventions import build_expert_set, experiment_settings
    from polyroute.routing.store import to_dataset, write_store
    from polyroute.routing.synthetic import synthetic_shard

    langs = ["eng_Latn", "fra_Latn", "swh_Latn"]
    general, task = tmp_path / "general.zarr", tmp_path / "task.zarr"
    write_store(to_dataset(synthetic_shard(0, langs, 6, layers=range(8), num_experts=8, top_k=2), {"top_k": 2}), general)
    write_store(to_dataset(synthetic_shard(1, ["eng_Latn"], 6, layers=range(8), num_experts=8, top_k=2), {"top_k": 2}), task)
    info = tmp_path / "info.json"
    from polyroute.models.info import ModelInfo

    record = ModelInfo(moe_layers=tuple(range(8)), num_experts=8, expert_params=10, router_params=8,
                       total_params=10_000, model="tiny", top_k=2).to_record()
    info.write_text(json.dumps(record))
    run = {"languages": langs, "reference_language": "eng_Latn", "interventions": {"task_data": {"name": "mgsm"}}}
    stats = {"affinity_top_m": 8, "exclusive_threshold": 0.4}
    raws = {"t": dict(kind="hard", experts="bandarkar-task", tau=-1.0, window="steer"),  # tau < 0: many pass
            "s": dict(kind="affinity", experts="chen-shared", strength=[0.01, 0.03], sources=["eng_Latn", "fra_Latn"],
                      top_m=6),
            "a": dict(kind="affinity", experts="chen-shared", sources="all"),
            "m": dict(kind="mask", experts="chen-exclusive", language="swh_Latn", window="late")}
    gds, tds = xr.open_zarr(general), xr.open_zarr(task)
    for name, raw in raws.items():
        settings = experiment_settings(experiment(name, raw, run), stats)
        record = build_expert_set(settings=settings, routing=general, task_routing=task, model_info=info,
                                  out=tmp_path / f"{name}.json")
        assert json.loads((tmp_path / f"{name}.json").read_text()) == record
        layers = window_layers(raw.get("window", "steer"), range(8))
        assert record["layers"] == layers and {layer for layer, _ in record["experts"]} <= set(layers)
        if name == "t":
            mask, delta = task_experts(tds, gds, layers, tau=-1.0)
            assert record["experts"] == expert_list(mask, delta, max_per_layer=2)[0]  # hard: at most k per layer
            assert all(sum(layer == l for l, _ in record["experts"]) == 2 for layer in layers)
        if name == "s":
            mask, w = shared_source_experts(gds, "eng_Latn", layers, top_m=6, sources=["eng_Latn", "fra_Latn"])
            assert (record["experts"], record["scores"]) == expert_list(mask, w) and record["strengths"] == [0.01, 0.03]
            assert record["settings"]["settings"]["top_m"] == 6  # its own m, not stats.affinity_top_m
        if name == "a":  # W over every language, Chen's steering m = 20 clipped to the 8 experts
            mask, w = shared_source_experts(gds, "eng_Latn", layers, top_m=20, sources=None)
            assert (record["experts"], record["scores"]) == expert_list(mask, w)
        if name == "m":
            mask, w = exclusive_experts(gds, "swh_Latn", layers, top_m=8, theta=0.4)
            assert record["experts"] == expert_list(mask, w, max_per_layer=6)[0] and record["variant_prefix"] == "mask"
