"""Windowed capture and extraction streamed into the store (flat memory for any shard size)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from polyroute.atomic import MARKER_NAME
from polyroute.models import get_adapter
from polyroute.models.tiny import tiny_config, tiny_model, tiny_tokenizer
from polyroute.routing.capture import _plan_windows
from polyroute.routing.store import is_complete, open_store, to_dataset, write_store
from polyroute.routing.stream import extract_shard, extract_to_store

torch.set_num_threads(1)

LANGS = ["eng_Latn", "fra_Latn", "deu_Latn"]
TEXTS = [f"sentence number {i} " * (1 + i % 7) for i in range(40)]
TEXT_LANGS = [LANGS[i % 3] for i in range(40)]
SEQ_IDS = [f"s{i}" for i in range(40)]
PAR_IDS = [f"p{i // 3}" for i in range(40)]
ATTRS = {"model": "tiny", "dataset": "unit"}


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model(tiny_config("qwen3_moe"))
    return model, tiny_tokenizer(), get_adapter(model)


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and p.name != MARKER_NAME}


def test_windows_are_consecutive_and_fit_the_budget_by_hand():
    assert _plan_windows([3, 4, 2, 5, 1], 7) == [range(0, 2), range(2, 4), range(4, 5)]
    assert _plan_windows([9, 1, 1], 4) == [range(0, 1), range(1, 3)]  # a long sequence is a window alone
    assert _plan_windows([], 4) == []
    covered = [i for w in _plan_windows(list(range(1, 30)), 50) for i in w]
    assert covered == list(range(29))


@pytest.mark.parametrize("per_token", [True, False])
def test_streamed_store_equals_the_in_memory_route(tiny, tmp_path, per_token):
    model, tok, adapter = tiny
    kw = dict(languages=LANGS, batch_tokens=64, max_length=32, per_token=per_token, window_tokens=100)
    in_memory = extract_shard(model, tok, adapter, TEXTS, TEXT_LANGS, SEQ_IDS, PAR_IDS, **kw)
    write_store(to_dataset(in_memory, ATTRS), tmp_path / "memory.zarr")
    extract_to_store(model, tok, adapter, TEXTS, TEXT_LANGS, SEQ_IDS, PAR_IDS, tmp_path / "streamed.zarr", ATTRS, **kw)
    assert is_complete(tmp_path / "streamed.zarr")
    xr.testing.assert_identical(open_store(tmp_path / "streamed.zarr").load(), open_store(tmp_path / "memory.zarr").load())
    assert _files(tmp_path / "streamed.zarr") == _files(tmp_path / "memory.zarr")


def test_window_size_changes_batching_not_routing(tiny):
    model, tok, adapter = tiny
    kw = dict(languages=LANGS, batch_tokens=64, max_length=32, per_token=True)
    whole = extract_shard(model, tok, adapter, TEXTS, TEXT_LANGS, SEQ_IDS, PAR_IDS, window_tokens=10**6, **kw)
    small = extract_shard(model, tok, adapter, TEXTS, TEXT_LANGS, SEQ_IDS, PAR_IDS, window_tokens=50, **kw)
    np.testing.assert_array_equal(small.count, whole.count)
    np.testing.assert_array_equal(small.expert_ids, whole.expert_ids)
    np.testing.assert_array_equal(small.token_sequence, whole.token_sequence)
    np.testing.assert_allclose(small.gate_sum, whole.gate_sum, rtol=1e-5)
    np.testing.assert_allclose(small.seq_prob_sum, whole.seq_prob_sum, rtol=1e-5, atol=1e-6)


def test_bad_input_fails_before_any_store_is_started(tiny, tmp_path):
    model, tok, adapter = tiny
    with pytest.raises(ValueError, match="languages_of_texts has 1 entries"):
        extract_to_store(model, tok, adapter, TEXTS, TEXT_LANGS[:1], SEQ_IDS, PAR_IDS, tmp_path / "x.zarr", ATTRS,
                         languages=LANGS)
    assert not list(tmp_path.iterdir())


EXTRACTOR = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_stream import *
model = tiny_model(tiny_config("qwen3_moe"))
texts = TEXTS * 40
n = len(texts)
extract_to_store(model, tiny_tokenizer(), get_adapter(model), texts, TEXT_LANGS * 40, [f"s{{i}}" for i in range(n)],
                 PAR_IDS * 40, sys.argv[1], ATTRS, languages=LANGS, batch_tokens=64, max_length=32,
                 per_token=True, window_tokens=64)
"""


def test_sigkill_during_streamed_extraction_leaves_nothing_trusted(tmp_path):
    code = EXTRACTOR.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "ref.zarr")], check=True, env=env, timeout=600)

    path = tmp_path / "r.zarr"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], env=env)
    tmp = tmp_path / f"r.zarr.tmp-{proc.pid}"
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp / "seq_count" / "c").glob("*")):  # windows reached the disk
        time.sleep(0.02)
    assert proc.poll() is None, "extraction finished before it could be killed: give it more text"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not path.exists() and not is_complete(path) and not (tmp / MARKER_NAME).exists()

    subprocess.run([sys.executable, "-c", code, str(path)], check=True, env=env, timeout=600)
    assert not tmp.exists() and is_complete(path)
    xr.testing.assert_identical(open_store(path).load(), open_store(tmp_path / "ref.zarr").load())
    assert _files(path) == _files(tmp_path / "ref.zarr")


def test_a_failed_store_write_fails_the_extraction_and_leaves_nothing_trusted(tiny, tmp_path, monkeypatch):
    from polyroute.routing import store

    model, tok, adapter = tiny
    calls = []
    real = store.StoreWriter.append

    def failing(self, dim, block):
        calls.append(dim)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real(self, dim, block)

    monkeypatch.setattr(store.StoreWriter, "append", failing)
    with pytest.raises(OSError, match="No space left"):
        extract_to_store(model, tok, adapter, TEXTS, TEXT_LANGS, SEQ_IDS, PAR_IDS, tmp_path / "x.zarr", ATTRS,
                         languages=LANGS, batch_tokens=64, max_length=32, per_token=True, window_tokens=50)
    assert not is_complete(tmp_path / "x.zarr")
    assert not list(tmp_path.iterdir())  # the temporary folder is gone too
