"""Routing store: contract names and dtypes, invariants, chunking, atomic writes, markers, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from polyroute.atomic import MARKER_NAME, config_hash, provenance, read_marker
from polyroute.routing.store import chunk_size, is_complete, open_store, to_dataset, write_store
from polyroute.routing.synthetic import synthetic_shard

SMALL = {"token": 7, "sequence": 3}


def _files(path: Path) -> dict[str, bytes]:
    """Every file of a store except the marker (which holds a creation time) and zarr.json (attrs)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name not in (MARKER_NAME, "zarr.json")}


def test_contract_names_dtypes_and_roundtrip(tmp_path):
    shard = synthetic_shard(seed=1)
    ds = to_dataset(shard, provenance(model="tiny/moe", dataset="flores", split="dev"))
    write_store(ds, tmp_path / "r.zarr")
    back = open_store(tmp_path / "r.zarr")
    assert set(back.coords) == {"language", "layer", "expert"}
    assert {"token", "topk", "sequence"} <= set(back.dims)
    want = {"count": np.int64, "gate_sum": np.float64, "prob_sum": np.float64, "tokens": np.int64,
            "seq_count": np.float32, "seq_gate_sum": np.float32, "seq_prob_sum": np.float32, "seq_tokens": np.int64,
            "expert_ids": np.uint8, "expert_weights": np.float16, "token_id": np.int32, "token_sequence": np.int64}
    for name, dtype in want.items():
        assert back[name].dtype == dtype, name
    assert back["count"].dims == ("language", "layer", "expert")
    assert back["expert_ids"].dims == ("token", "layer", "topk")
    for name in ("seq_id", "seq_language", "seq_parallel_id"):
        assert all(isinstance(v, str) for v in back[name].values), name
    assert isinstance(back.language.values[0], str)
    assert back.attrs["model"] == "tiny/moe" and back.attrs["top_k"] == 2 and back.attrs["num_experts"] == 8
    xr.testing.assert_identical(back.load(), ds)  # attrs included
    # the stored values are the shard's values
    np.testing.assert_array_equal(back["count"].values, shard.count)
    np.testing.assert_array_equal(back["expert_ids"].values, shard.expert_ids)


def test_sequence_sums_add_up_to_the_aggregates():
    # the synthetic shard's per-sequence sums of the used weights are those of its per-token weights
    shard = synthetic_shard(seed=2)
    per_token = np.zeros_like(shard.seq_gate_sum, dtype=np.float64)
    np.add.at(per_token, (shard.token_sequence[:, None, None], np.arange(3)[None, :, None], shard.expert_ids.astype(int)),
              shard.expert_weights.astype(np.float64))
    np.testing.assert_allclose(shard.seq_gate_sum, per_token, atol=2e-3)  # expert_weights are float16
    # a renormalised top-k: each token's weights sum to 1, so a sequence's to its tokens
    np.testing.assert_allclose(shard.seq_gate_sum.sum(-1), shard.seq_tokens[:, None].repeat(3, 1), rtol=1e-5)
    shard.check_invariant()
    broken = synthetic_shard(seed=2)
    broken.seq_gate_sum = broken.seq_gate_sum.copy()
    broken.seq_gate_sum[0, 1, :] *= 1.01
    with pytest.raises(ValueError, match="seq_gate_sum of language eng_Latn layer 1 expert .* gate_sum is"):
        to_dataset(broken, {})
    # weight moved onto an expert sequence 0 never chose, and back from another sequence of its
    # language: the per-language sums still agree, the support rule does not
    stray = synthetic_shard(seed=2)
    lang = stray.seq_language
    l, e = next((l, e) for l in range(3) for e in range(8)
                if stray.seq_count[0, l, e] == 0 and (stray.seq_count[1:, l, e][lang[1:] == lang[0]] > 0).any())
    s2 = 1 + int(np.flatnonzero((stray.seq_count[1:, l, e] > 0) & (lang[1:] == lang[0]))[0])
    d = int(np.flatnonzero(stray.seq_count[0, l])[0])
    moved, w = stray.seq_gate_sum.copy(), 0.01
    moved[0, l, d] -= w
    moved[0, l, e] += w
    moved[s2, l, e] -= w
    moved[s2, l, d] += w
    stray.seq_gate_sum = moved
    with pytest.raises(ValueError, match=f"sequence 0 layer {l} has a routing weight on expert {e}, which none"):
        stray.check_invariant()


def test_uint16_ids_beyond_256_experts(tmp_path):
    ds = to_dataset(synthetic_shard(num_experts=300, seqs_per_language=1, layers=(0,)), {})
    assert ds["expert_ids"].dtype == np.uint16
    write_store(ds, tmp_path / "r.zarr")
    assert open_store(tmp_path / "r.zarr")["expert_ids"].dtype == np.uint16


def test_without_per_token_arrays(tmp_path):
    ds = to_dataset(synthetic_shard(per_token=False), {})
    assert "token" not in ds.dims and "expert_ids" not in ds
    write_store(ds, tmp_path / "r.zarr")
    assert is_complete(tmp_path / "r.zarr")


def test_bad_shard_is_a_one_line_error_naming_the_field():
    shard = synthetic_shard()
    shard.count = shard.count[:, :, :-1]
    with pytest.raises(ValueError, match="count has shape"):
        to_dataset(shard, {})
    shard = synthetic_shard()
    shard.count[0, 1, 0] += 1
    with pytest.raises(ValueError, match="invariant broken: language eng_Latn layer 1"):
        to_dataset(shard, {})
    with pytest.raises(ValueError, match="attrs\\['top_k'\\]=3 disagrees"):
        to_dataset(synthetic_shard(), {"top_k": 3})
    shard = synthetic_shard()
    shard.expert_ids[0, 0, 0] = 8
    with pytest.raises(ValueError, match=r"expert_ids must lie in \[0, 8\)"):
        to_dataset(shard, {})


def test_invariant_rechecked_at_write_and_nothing_left(tmp_path):
    ds = to_dataset(synthetic_shard(), {})
    ds["count"][0, 0, 0] += 1
    with pytest.raises(ValueError, match="invariant broken"):
        write_store(ds, tmp_path / "r.zarr")
    assert list(tmp_path.iterdir()) == []


def test_chunk_sizes_by_hand():
    # 48 layers x k=8 float16 weights = 768 B/token: 32 MiB / 768 = 43690 -> 2^15, clamped up to 2^16
    assert chunk_size("token", 48 * 8 * 2) == 2**16
    assert chunk_size("token", 3 * 2 * 2) == 2**18  # tiny model: upper clamp
    assert chunk_size("token", 16 * 4 * 2) == 2**18  # 32 MiB / 128 B = 2^18 exactly
    # 48 layers x 128 experts float32 = 24 KiB/sequence: 32 MiB / 24 KiB = 1365 -> 1024
    assert chunk_size("sequence", 48 * 128 * 4) == 1024


def test_small_chunks_stream_the_same_values(tmp_path):
    ds = to_dataset(synthetic_shard(seqs_per_language=6), {})
    write_store(ds, tmp_path / "a.zarr")
    write_store(ds, tmp_path / "b.zarr", chunks=SMALL)
    a, b = open_store(tmp_path / "a.zarr"), open_store(tmp_path / "b.zarr")
    assert b["expert_ids"].encoding["chunks"] == (7, 3, 2)
    assert b["seq_count"].encoding["chunks"] == (3, 3, 8)
    assert ds.sizes["token"] % 7 != 0  # the last partial chunk is exercised
    xr.testing.assert_identical(a.load(), b.load())


def test_deterministic_writes(tmp_path):
    shard = synthetic_shard(seed=3)
    attrs = provenance(model="m")  # once: git_commit may change while other work goes on
    write_store(to_dataset(shard, attrs), tmp_path / "a.zarr", chunks=SMALL)
    write_store(to_dataset(shard, {**attrs, "created": "2030-01-01T00:00:00+00:00"}), tmp_path / "b.zarr", chunks=SMALL)
    a, b = open_store(tmp_path / "a.zarr").load(), open_store(tmp_path / "b.zarr").load()
    assert a.attrs["created"] != b.attrs["created"]
    a.attrs.pop("created"), b.attrs.pop("created")
    xr.testing.assert_identical(a, b)
    assert _files(tmp_path / "a.zarr") == _files(tmp_path / "b.zarr")  # byte-identical chunks


def test_marker_and_is_complete(tmp_path):
    path = tmp_path / "r.zarr"
    write_store(to_dataset(synthetic_shard(), {}), path)
    marker = read_marker(path)
    assert marker["format"] == "polyroute-store/1" and marker["shapes"]["count"] == [3, 3, 8]
    assert len(marker["sha256"]) == 64
    assert is_complete(path)
    # an array whose shape no longer matches the marker: untrusted
    meta = path / "tokens" / "zarr.json"
    m = json.loads(meta.read_text())
    m["shape"] = [4]
    meta.write_text(json.dumps(m))
    assert not is_complete(path)
    (path / MARKER_NAME).unlink()
    assert not is_complete(path)
    with pytest.raises(ValueError, match="incomplete"):
        open_store(path)
    assert not is_complete(tmp_path / "missing.zarr")


def test_rewrite_replaces_incomplete_store_and_stale_temps(tmp_path):
    path = tmp_path / "r.zarr"
    ds = to_dataset(synthetic_shard(), {})
    write_store(ds, path)
    marker = json.loads((path / MARKER_NAME).read_text())
    marker["shapes"]["count"] = [0]  # a store's marker that no longer matches its arrays
    (path / MARKER_NAME).write_text(json.dumps(marker))
    assert not is_complete(path)
    stale = tmp_path / "r.zarr.tmp-999999"  # no such process: a killed writer's leftover
    stale.mkdir()
    (stale / "junk").write_text("x")
    write_store(ds, path)
    assert is_complete(path) and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.zarr"]


def test_generic_dataset_store(tmp_path):
    stats = xr.Dataset({"entropy": (("language", "layer"), np.ones((2, 3)))},
                       coords={"language": ["a", "b"], "layer": [0, 1, 2]}, attrs={"log_base": "e"})
    write_store(stats, tmp_path / "s.zarr")
    back = open_store(tmp_path / "s.zarr")
    assert back.attrs == {"log_base": "e"} and float(back["entropy"].sum()) == 6.0
    assert isinstance(back.language.values[0], str)


def test_provenance_fields():
    p = provenance(model="m", model_revision=None, top_k=np.int64(2), config_hash=config_hash({"a": 1}))
    assert "model_revision" not in p and p["top_k"] == 2 and type(p["top_k"]) is int
    assert p["polyroute_version"] == "0.1.0" and p["git_commit"] and p["created"].endswith("+00:00")
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1}) != config_hash({"a": 2})
    with pytest.raises(ValueError, match="provenance field 'bad'"):
        provenance(bad=object())


def test_bytes_per_token_per_layer(tmp_path, capsys):
    """Measure compressed size of the per-token arrays (printed, and bounded by the raw size)."""
    shard = synthetic_shard(seqs_per_language=40, max_tokens=64, layers=tuple(range(4)), num_experts=64, top_k=8)
    write_store(to_dataset(shard, {}), tmp_path / "r.zarr")
    n, L, k = shard.expert_ids.shape
    sizes = {v: sum(p.stat().st_size for p in (tmp_path / "r.zarr" / v).rglob("*") if p.is_file())
             for v in ("expert_ids", "expert_weights")}
    per = {v: s / (n * L) for v, s in sizes.items()}
    with capsys.disabled():
        print(f"\n[store size] {n} tokens, k={k}: " + ", ".join(f"{v} {b:.2f} B/token/layer (raw {k * np.dtype(shard.__dict__[v].dtype).itemsize})" for v, b in per.items()))
    assert per["expert_ids"] <= k * 1.05 and per["expert_weights"] <= k * 2 * 1.05


WRITER = r"""
import sys
from polyroute.routing.store import to_dataset, write_store
from polyroute.routing.synthetic import synthetic_shard
shard = synthetic_shard(seed=5, seqs_per_language=25, max_tokens=16, layers=(0, 1), num_experts=16, top_k=2)
write_store(to_dataset(shard, {"model": "m"}), sys.argv[1], chunks={"token": 16, "sequence": 8})
"""


@pytest.mark.slow
def test_sigkill_mid_write_leaves_nothing_trusted(tmp_path):
    path = tmp_path / "r.zarr"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # reference: an uninterrupted run
    subprocess.run([sys.executable, "-c", WRITER, str(tmp_path / "ref.zarr")], check=True, env=env)
    ref = open_store(tmp_path / "ref.zarr").load()

    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    tmp = tmp_path / f"r.zarr.tmp-{proc.pid}"
    deadline = time.time() + 60
    while time.time() < deadline and len(list((tmp / "expert_ids" / "c").glob("*"))) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "writer finished before it could be killed: make it write more"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tmp.exists() and not path.exists() and not is_complete(path)
    assert not (tmp / MARKER_NAME).exists()

    # a rerun (another process) cleans the temporary and produces the uninterrupted result
    subprocess.run([sys.executable, "-c", WRITER, str(path)], check=True, env=env)
    assert not tmp.exists() and is_complete(path)
    out = open_store(path).load()
    xr.testing.assert_identical(out, ref)
    assert _files(path) == _files(tmp_path / "ref.zarr")

    # killing a rewrite of a complete store leaves the old complete store in place
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    tmp = tmp_path / f"r.zarr.tmp-{proc.pid}"
    while time.time() < deadline + 60 and len(list((tmp / "expert_ids" / "c").glob("*"))) < 3:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert is_complete(path)
    xr.testing.assert_identical(open_store(path).load(), ref)
