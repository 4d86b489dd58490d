"""Sharding and gather: shards cover the sequences once, gather of N shards equals a single-shard run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from polyroute.atomic import MARKER_NAME
from polyroute.routing.shards import gather, interleaved_order, shard_indices
from polyroute.routing.store import is_complete, open_store, to_dataset, write_store
from polyroute.routing.synthetic import synthetic_shard

SMALL = {"token": 7, "sequence": 3}
KW = {"seqs_per_language": 5}  # 3 languages -> 15 sequences


def test_shard_indices_by_hand_and_cover_once():
    assert [shard_indices(10, 3, i) for i in range(3)] == [slice(0, 3), slice(3, 6), slice(6, 10)]
    for n, N in [(0, 1), (7, 7), (100, 7), (5, 1), (3, 8)]:
        covered = np.concatenate([np.arange(n)[shard_indices(n, N, i)] for i in range(N)])
        np.testing.assert_array_equal(covered, np.arange(n))
        sizes = [len(range(n)[shard_indices(n, N, i)]) for i in range(N)]
        assert max(sizes) - min(sizes) <= 1
    for args, msg in [((5, 0, 0), "n_shards"), ((5, 2, 2), "shard index 2"), ((-1, 1, 0), "n_sequences")]:
        with pytest.raises(ValueError, match=msg):
            shard_indices(*args)


def test_interleaved_order_spreads_languages():
    langs = ["eng", "eng", "eng", "fra", "fra", "fra"]
    pids = ["p0", "p1", "p2", "p0", "p1", "p2"]
    order = interleaved_order(langs, pids)
    assert order.tolist() == [0, 3, 1, 4, 2, 5]
    # after ordering, each of 3 contiguous shards holds both languages of one sentence
    for i in range(3):
        part = order[shard_indices(6, 3, i)]
        assert sorted(langs[j] for j in part) == ["eng", "fra"]
        assert len({pids[j] for j in part}) == 1
    with pytest.raises(ValueError, match="6 languages but 5"):
        interleaved_order(langs, pids[:5])


def _write_shards(tmp_path, n_shards, attrs=None, **kw):
    n = 3 * kw.get("seqs_per_language", KW["seqs_per_language"])
    paths = []
    for i in range(n_shards):
        shard = synthetic_shard(sequences=shard_indices(n, n_shards, i), **{**KW, **kw})
        p = tmp_path / "shards" / f"{i}.zarr"
        write_store(to_dataset(shard, {"model": "m", "shard_index": i, "shard_count": n_shards, **(attrs or {})}), p, SMALL)
        paths.append(p)
    return paths


def _assert_same_as_single(gathered: xr.Dataset, single: xr.Dataset) -> None:
    assert set(gathered.variables) == set(single.variables)
    for name in single.variables:
        if name in ("gate_sum", "prob_sum"):  # float sums: same values up to summation order
            np.testing.assert_allclose(gathered[name].values, single[name].values, rtol=1e-12, atol=1e-12)
            assert gathered[name].dtype == single[name].dtype
        else:
            xr.testing.assert_identical(gathered[name].variable, single[name].variable)


@pytest.mark.parametrize("n_shards", [1, 3, 4])
def test_gather_equals_single_shard_run(tmp_path, n_shards):
    single = to_dataset(synthetic_shard(**KW), {"model": "m"})
    paths = _write_shards(tmp_path, n_shards)
    gather(paths, tmp_path / "g.zarr", {"dataset": "flores"}, chunks=SMALL)
    assert is_complete(tmp_path / "g.zarr")
    out = open_store(tmp_path / "g.zarr").load()
    _assert_same_as_single(out, single)
    assert out["expert_ids"].encoding["chunks"][0] == 7
    assert out.attrs["model"] == "m" and out.attrs["dataset"] == "flores" and out.attrs["top_k"] == 2
    assert "shard_index" not in out.attrs and "shard_count" not in out.attrs and "created" in out.attrs
    # token_sequence points at global sequences: every token's sequence has the token's language
    lang_of_token = out["seq_language"].values[out["token_sequence"].values]
    assert len(lang_of_token) == int(out["tokens"].sum())


def test_gather_aligns_languages(tmp_path):
    single = to_dataset(synthetic_shard(**KW), {"model": "m"})
    paths = _write_shards(tmp_path, 2)
    # rewrite shard 1 with its languages in another order
    ds = open_store(paths[1]).load().isel(language=[2, 0, 1])
    write_store(ds, paths[1], SMALL)
    gather(paths, tmp_path / "g.zarr", {}, chunks=SMALL)
    _assert_same_as_single(open_store(tmp_path / "g.zarr").load(), single)
    # explicit order, including a language no shard saw (zero counts)
    gather(paths, tmp_path / "h.zarr", {}, languages=["zho_Hans", "eng_Latn", "fra_Latn", "deu_Latn"], chunks=SMALL)
    h = open_store(tmp_path / "h.zarr")
    assert h.language.values.tolist() == ["zho_Hans", "eng_Latn", "fra_Latn", "deu_Latn"]
    assert int(h["tokens"].sel(language="deu_Latn")) == 0
    np.testing.assert_array_equal(h["count"].sel(language="eng_Latn"), single["count"].sel(language="eng_Latn"))
    with pytest.raises(ValueError, match=r"not in the given languages: \['fra_Latn'\]"):
        gather(paths, tmp_path / "x.zarr", {}, languages=["eng_Latn", "zho_Hans"])


def test_gather_refuses_bad_shards(tmp_path):
    paths = _write_shards(tmp_path, 3)
    with pytest.raises(ValueError, match="at least one"):
        gather([], tmp_path / "g.zarr", {})
    with pytest.raises(ValueError, match="shard_index 1 but given at position 0"):
        gather([paths[1], paths[0], paths[2]], tmp_path / "g.zarr", {})
    with pytest.raises(ValueError, match="shard_count=3, but 2 shards"):
        gather(paths[:2], tmp_path / "g.zarr", {})
    with pytest.raises(ValueError, match="attrs\\['top_k'\\]=4 disagrees"):
        gather(paths, tmp_path / "g.zarr", {"top_k": 4})
    other = _write_shards(tmp_path / "o", 3, attrs={"model": "other"})
    with pytest.raises(ValueError, match="has model='other'"):
        gather([paths[0], other[1], paths[2]], tmp_path / "g.zarr", {})
    layers = _write_shards(tmp_path / "l", 3, layers=(0, 1, 5))
    with pytest.raises(ValueError, match="has layers \\[0, 1, 5\\]"):
        gather([paths[0], layers[1], paths[2]], tmp_path / "g.zarr", {})
    (paths[2] / MARKER_NAME).unlink()
    with pytest.raises(ValueError, match="2.zarr is incomplete"):
        gather(paths, tmp_path / "g.zarr", {})
    assert not (tmp_path / "g.zarr").exists()


MEMORY = r"""
import resource, sys, time
import numpy as np
from polyroute.routing.records import ShardRouting
from polyroute.routing.store import to_dataset, write_store
from polyroute.routing.shards import gather

L, E, k, S, N = 8, 64, 8, 64, 2**18  # per shard: S sequences, N tokens
def shard(i):
    rng = np.random.default_rng(i)
    ids = rng.integers(0, E, size=(N, L, k)).astype(np.uint8)
    seq = np.repeat(np.arange(S), N // S)
    count = np.stack([np.bincount(ids[:, l].ravel(), minlength=E) for l in range(L)])[None]
    seq_count = np.zeros((S, L, E), np.float32)
    for l in range(L):
        np.add.at(seq_count[:, l], (np.repeat(seq, k), ids[:, l].ravel()), 1)
    return ShardRouting(["eng_Latn"], list(range(L)), E, k, count.astype(np.int64), count * 0.125, count * 0.1,
                        np.array([N]), np.array([f"s{i}-{j}" for j in range(S)], dtype=object),
                        np.array(["eng_Latn"] * S, dtype=object), np.array([f"p{j}" for j in range(S)], dtype=object),
                        np.full(S, N // S), seq_count, seq_count * 0.125, seq_count * 0.1, ids,
                        rng.random((N, L, k)).astype(np.float16), rng.integers(0, 32000, N).astype(np.int32), seq)
mode, out, n_shards = sys.argv[1], sys.argv[2], int(sys.argv[3])
chunks = {"token": 2**15}
if mode == "write":
    for i in range(4):
        write_store(to_dataset(shard(i), {"model": "m"}), f"{out}/{i}.zarr", chunks)
else:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.time()
    gather([f"{out}/{i}.zarr" for i in range(n_shards)], f"{out}/g{n_shards}.zarr", {}, chunks=chunks)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((after - before) // 1024, round(time.time() - t, 1))
"""


@pytest.mark.slow
def test_gather_memory_stays_flat_for_a_million_tokens(tmp_path, capsys):
    """Peak memory of gathering 4 shards (1M tokens) exceeds that of 1 shard by far less than the data."""
    subprocess.run([sys.executable, "-c", MEMORY, "write", str(tmp_path), "4"], check=True)
    grew = {}
    for n in (1, 4):
        res = subprocess.run([sys.executable, "-c", MEMORY, "gather", str(tmp_path), str(n)], check=True,
                             capture_output=True, text=True)
        mib, seconds = res.stdout.split()
        grew[n] = int(mib)
        with capsys.disabled():
            print(f"\n[gather] {n * 2**18:,} tokens ({n * 2**18 * 204 / 2**20:.0f} MiB per-token data): "
                  f"peak RSS grew {mib} MiB, {seconds} s")
    extra_mib = 3 * 2**18 * (8 * 8 * 3 + 4 + 8) / 2**20  # ids + weights + token_id + token_sequence
    assert grew[4] - grew[1] < extra_mib / 4
    tokens = 4 * 2**18
    out = open_store(tmp_path / "g4.zarr")
    assert out.sizes["token"] == tokens and int(out["tokens"].sum()) == tokens
    assert int(out["token_sequence"][-1]) == 4 * 64 - 1
