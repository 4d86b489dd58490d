"""compute_stats on synthetic routing stores: per-sequence and per-token statistics, chunking, errors, tables."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy as sp_entropy

from polyroute.stats import compute_stats, divergence_parallel, routing_consistency, tables, vocabulary_overlap, write_tables
from polyroute.stats.consistency import topk_intersection
from polyroute.stats.synthetic import synthetic_store

REF = "l000_Synt"


@pytest.fixture(scope="module")
def store():
    return synthetic_store(n_languages=5, n_layers=6, n_experts=10, top_k=3, seqs_per_language=6, seed=7)


@pytest.fixture(scope="module")
def stats(store):
    return compute_stats(store, reference=REF, scores={g: float(i) for i, g in enumerate(store["language"].values)})


def test_synthetic_store_invariant(store):
    diff = store["count"].sum("expert") - store.attrs["top_k"] * store["tokens"]
    assert diff.dims == ("language", "layer") and (diff == 0).all()


def test_contract_names_and_attrs(stats):
    contract = {
        "frequency": ("language", "layer", "expert"), "distribution": ("language", "layer", "expert"),
        "entropy": ("language", "layer"), "divergence": ("language", "layer"), "jsd": ("language", "layer"),
        "similarity": ("language", "language_b", "layer"), "specialisation": ("layer",),
        "consistency": ("language", "layer"), "affinity": ("language", "layer", "expert"),
        "expert_class": ("language", "layer", "expert"), "specificity": ("language", "layer", "expert"),
        "overlap": ("layer", "expert"),
    }
    for name, dims in contract.items():
        assert stats[name].dims == dims, name
    assert stats.attrs["reference_language"] == REF
    assert stats.attrs["log_base"] == pytest.approx(np.e)
    assert stats.attrs["thresholds"] == {"top_m": 15, "theta": 0.4}
    assert "divergence_parallel" in stats and stats["divergence_parallel"].attrs["reference"] == REF
    assert set(np.unique(stats["expert_class"].values)) <= {0, 1, 2}


@pytest.mark.parametrize("source", ["used", "hard"])
def test_divergence_parallel_against_pair_loop(store, stats, source):
    # the default input is Bandarkar's: per sequence, the used routing weights summed and normalised
    k = store.attrs["top_k"]
    seq_lang = store["seq_language"].values
    pid = store["seq_parallel_id"].values
    if source == "used":
        gate = store["seq_gate_sum"].values.astype(np.float64)
        dist = gate / gate.sum(-1, keepdims=True)
    else:
        dist = store["seq_count"].values / (k * store["seq_tokens"].values[:, None, None])
        stats = compute_stats(store, reference=REF, divergence_source="hard")
    assert stats["divergence_parallel"].attrs["distribution"] == source
    ref_rows = {p: i for i, (g, p) in enumerate(zip(seq_lang, pid)) if g == REF}
    for gi, g in enumerate(store["language"].values):
        rows = [i for i in range(len(seq_lang)) if seq_lang[i] == g]
        for l in range(store.sizes["layer"]):
            ds = []
            for i in rows:
                r = ref_rows[pid[i]]
                j = jensenshannon(dist[r, l], dist[i, l], base=np.e) ** 2
                ds.append(j / (np.log(10) - (sp_entropy(dist[r, l]) + sp_entropy(dist[i, l])) / 2))
            expected = 0.0 if g == REF else np.mean(ds)
            assert stats["divergence_parallel"].values[gi, l] == pytest.approx(expected, abs=1e-6)
    assert stats["divergence_parallel_pairs"].values.tolist() == [0, 6, 6, 6, 6]


def test_parallel_pairs_missing_translation(store):
    # drop the reference translation of parallel id p0: those sequences no longer count
    keep = ~((store["seq_language"] == REF) & (store["seq_parallel_id"] == "p0"))
    sub = store.isel(sequence=np.flatnonzero(keep.values))
    out = divergence_parallel(sub, REF, chunk=4)
    assert out["divergence_parallel_pairs"].values.tolist() == [0, 5, 5, 5, 5]


def test_consistency_by_hand():
    ids = np.array([[[0, 1]], [[1, 2]], [[2, 3]], [[5, 4]], [[4, 5]]], dtype=np.uint8)
    ds = xr.Dataset(
        {
            "expert_ids": (("token", "layer", "topk"), ids),
            "token_sequence": (("token",), np.array([0, 0, 0, 1, 1])),
            "seq_language": (("sequence",), np.array(["a", "b"])),
        },
        coords={"language": ["a", "b"], "layer": [3]},
    )
    for chunk in (1, 2, 100):  # pairs across chunk boundaries are counted once
        c = routing_consistency(ds, chunk=chunk)
        np.testing.assert_allclose(c.values.ravel(), [0.5, 1.0])
    np.testing.assert_array_equal(topk_intersection(ids[:-1], ids[1:]).ravel(), [1, 1, 0, 2])


def test_consistency_against_slow_loop(store, stats):
    ids, seq = store["expert_ids"].values, store["token_sequence"].values
    lang = store["seq_language"].values
    k = store.sizes["topk"]
    for gi, g in enumerate(store["language"].values):
        vals = [
            [len(set(ids[t, l]) & set(ids[t + 1, l])) / k for l in range(store.sizes["layer"])]
            for t in range(len(seq) - 1)
            if seq[t] == seq[t + 1] and lang[seq[t]] == g
        ]
        np.testing.assert_allclose(stats["consistency"].values[gi], np.mean(vals, axis=0))


def test_vocabulary_overlap_by_hand():
    ds = xr.Dataset(
        {
            "token_id": (("token",), np.array([1, 1, 2, 3, 1, 4], dtype=np.int32)),
            "token_sequence": (("token",), np.array([0, 0, 0, 0, 1, 1])),
            "seq_language": (("sequence",), np.array(["a", "b"])),
        },
        coords={"language": ["a", "b"]},
    )
    for chunk in (1, 4, 100):
        ov = vocabulary_overlap(ds, chunk=chunk).values
        np.testing.assert_allclose(ov, [[1.0, 0.5], [0.5, 1.0]])  # shares {1: .5, 2: .25, 3: .25} vs {1: .5, 4: .5}


def test_chunk_sizes_do_not_change_results(store, stats):
    small = compute_stats(store, reference=REF, scores={g: float(i) for i, g in enumerate(store["language"].values)},
                          sequence_chunk=4, token_chunk=7)
    xr.testing.assert_allclose(small, stats)


def test_zarr_round_trip_and_lazy_store(tmp_path, store, stats):
    store.to_zarr(tmp_path / "routing.zarr", zarr_format=3)
    lazy = xr.open_zarr(tmp_path / "routing.zarr")
    again = compute_stats(lazy, reference=REF, scores={g: float(i) for i, g in enumerate(store["language"].values)})
    xr.testing.assert_allclose(again, stats)
    stats.to_zarr(tmp_path / "stats.zarr", zarr_format=3)
    back = xr.open_zarr(tmp_path / "stats.zarr")
    assert back.attrs["reference_language"] == REF and back.attrs["thresholds"]["theta"] == 0.4


def test_score_correlation_leaves_out_reference(stats):
    from scipy import stats as sps

    mid = stats["divergence"].isel(layer=[2, 3]).mean("layer").values[1:]  # depth_zones(6) middle = [2, 4)
    sc = stats["score_correlation"]
    assert sc.sel(statistic="n").item() == 4
    assert sc.sel(statistic="pearson_r").item() == pytest.approx(sps.pearsonr(mid, [1, 2, 3, 4]).statistic)


def test_store_without_per_token_or_sequences():
    ds = synthetic_store(4, 5, 8, 2, 3, per_token=False, seed=1)
    st = compute_stats(ds, reference=REF)
    assert np.isnan(st["consistency"].values).all() and "per_token" in st["consistency"].attrs["note"]
    assert np.isnan(st["vocab_overlap"].values).all()
    assert "vocab_similarity_correlation" not in st
    st2 = compute_stats(ds.drop_vars(["seq_count", "seq_gate_sum", "seq_prob_sum"]), reference=REF)
    assert "divergence_parallel" not in st2 and "divergence" in st2
    # a store from before seq_gate_sum was recorded: a one-line error naming it, or another input
    with pytest.raises(ValueError, match="lacks seq_gate_sum for the 'used' divergence input"):
        compute_stats(ds.drop_vars(["seq_gate_sum"]), reference=REF)
    assert "divergence_parallel" in compute_stats(ds.drop_vars(["seq_gate_sum"]), reference=REF, divergence_source="hard")


def test_soft_source_and_log_base():
    ds = synthetic_store(3, 4, 6, 2, 2, seed=2)
    st = compute_stats(ds, reference=REF, source="soft", log_base=2)
    q = ds["prob_sum"] / ds["tokens"]
    # scipy renormalises q (float32 sums are 1 to ~1e-7); the store formula does not
    np.testing.assert_allclose(st["entropy"].values, sp_entropy(q.values, base=2, axis=-1), rtol=1e-5)
    assert st.attrs["distribution_source"] == "soft"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reference": "xx"}, "reference language 'xx'"),
        ({"reference": REF, "log_base": 1}, "log_base"),
        ({"reference": REF, "source": "mixed"}, "source 'mixed'"),
        ({"reference": REF, "top_m": 0}, "top_m"),
        ({"reference": REF, "theta": 1.5}, "theta"),
        ({"reference": REF, "scores": {"zz": 1.0}}, r"scores given for language\(s\) \['zz'\]"),
    ],
)
def test_bad_settings(store, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_stats(store, **kwargs)


def test_bad_store(store):
    with pytest.raises(ValueError, match="lacks variable"):
        compute_stats(store.drop_vars("prob_sum"), reference=REF)
    empty = store.copy()
    empty["tokens"] = empty["tokens"].where(empty["language"] != "l001_Synt", 0)
    with pytest.raises(ValueError, match="l001_Synt"):
        compute_stats(empty, reference=REF)


def test_tables(tmp_path, stats):
    t = tables(stats)
    assert {"language_layer", "layer", "language", "similarity", "expert_classes", "vocab_overlap",
            "vocab_similarity_correlation", "score_correlation"} <= set(t)
    assert len(t["similarity"]) == 10 * 6  # 5 choose 2 pairs x 6 layers
    assert len(t["language_layer"]) == 5 * 6
    paths = write_tables(t, tmp_path / "tables")
    assert all(p.endswith(".csv") for p in paths) and not list((tmp_path / "tables").glob("*.tmp-*"))


def test_no_torch_import():
    code = "import sys, polyroute.stats, polyroute.plots; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
