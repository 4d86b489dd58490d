"""Red team: what a hostile or careless user does, answered by one line that names the file or key and
says what to do, with nothing lost and nothing damaged (issue 19). Every case is fast: tiny stores and
models built in tmp_path, the tiny checkpoint of resources/models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from adapter_files import finished_adapter
from polyroute.atomic import MARKER_NAME, output_lock, write_marker
from polyroute.cli import main
from polyroute.errors import UserError
from polyroute.routing.shards import gather
from polyroute.routing.store import _aggregate_digest, open_store, to_dataset, write_store
from polyroute.routing.synthetic import synthetic_shard
from polyroute.train.artifacts import DELTA_FILE, base_record, load_delta, merge, read_adapter, save_delta

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "resources" / "models" / "polyroute-tiny-qwen3moe"
DEMO = ROOT / "resources" / "demo"
EXPERTS = "model.layers.1.mlp.experts.gate_up_proj"


# --- helpers ---------------------------------------------------------------------------------------
def tree(path: Path) -> dict[str, str]:
    """Every file under `path` (or the file itself) with a digest of its bytes: 'nothing was damaged'."""
    path = Path(path)
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def one_line(excinfo: pytest.ExceptionInfo, *parts: str) -> str:
    """The error's message: a UserError, one line, containing every part."""
    assert isinstance(excinfo.value, UserError), type(excinfo.value)
    text = str(excinfo.value)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, text
    return text


def cli_line(capsys: pytest.CaptureFixture, argv: list[str], *parts: str) -> str:
    """`polyroute ...` exits 2 with exactly one line on stderr, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith("Loading weights")]
    assert len(err) == 1 and "Traceback" not in err[0], err
    for part in parts:
        assert part in err[0], err[0]
    return err[0]


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32, use_safetensors=True)


@pytest.fixture
def adapter(tmp_path, tiny_model) -> Path:
    shape = tiny_model.get_parameter(EXPERTS).shape
    return finished_adapter(tmp_path / "adapter", tiny_model, TINY, {EXPERTS: (torch.tensor([2]), torch.ones(1, *shape[1:]))})


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "routing.zarr"
    write_store(to_dataset(synthetic_shard(), {}), path)
    return path


def _hold_lock(path: Path) -> subprocess.Popen:
    """Another process that holds the output lock of `path` and has a live temporary beside it."""
    code = ("import sys, time, pathlib; from polyroute.atomic import output_lock, temp_path\n"
            "with output_lock(sys.argv[1]):\n"
            "    temp_path(sys.argv[1]).mkdir(); print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


# --- 1. outputs are replaced only by the step that owns them --------------------------------------
def test_merge_refuses_to_write_over_its_base_model(tmp_path, adapter):
    base = tmp_path / "base"
    shutil.copytree(TINY, base)
    before = tree(base)
    with pytest.raises(UserError) as e:
        merge(base, adapter / DELTA_FILE, base)
    one_line(e, "would overwrite the base model")
    assert tree(base) == before


def test_merge_refuses_a_folder_inside_its_base_model(tmp_path, adapter):
    base = tmp_path / "base"
    shutil.copytree(TINY, base)
    before = tree(base)
    with pytest.raises(UserError) as e:
        merge(base, adapter / DELTA_FILE, base / "merged")
    one_line(e, "would overwrite the base model")
    assert tree(base) == before


def test_merge_refuses_an_unrelated_folder(tmp_path, adapter):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("months of work")
    before = tree(out)
    with pytest.raises(UserError) as e:
        merge(TINY, adapter / DELTA_FILE, out)
    one_line(e, str(out), "did not write", "choose another output path")
    assert tree(out) == before


def test_merge_refuses_a_run_folder_and_a_folder_inside_it(tmp_path, adapter):
    run = tmp_path / "results" / "demo"
    (run / "model").mkdir(parents=True)
    (run / "model" / "info.json").write_text("{}")
    before = tree(run)
    for out in (run, run / "merged"):
        with pytest.raises(UserError) as e:
            merge(TINY, adapter / DELTA_FILE, out)
        one_line(e, str(out))
    assert tree(run) == before and not (run / "merged").exists()


def test_merge_refuses_a_file_at_out(tmp_path, adapter):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    with pytest.raises(UserError) as e:
        merge(TINY, adapter / DELTA_FILE, out)
    one_line(e, "exists and is not a polyroute-merged/1 directory")
    assert out.read_text() == "keep me"


def test_merge_refuses_to_write_over_the_adapter_it_reads(adapter):
    before = tree(adapter)
    with pytest.raises(UserError) as e:
        merge(TINY, adapter / DELTA_FILE, adapter)
    one_line(e, "a polyroute-adapter/1 result")
    assert tree(adapter) == before


def test_any_base_accepts_a_renamed_copy_but_still_checks_its_shapes(tmp_path, adapter, capsys):
    copy = tmp_path / "copy-of-tiny"
    shutil.copytree(TINY, copy)
    cli_line(capsys, ["merge", str(copy), str(adapter), str(tmp_path / "m")], "was trained on")
    assert main(["merge", str(copy), str(adapter), str(tmp_path / "m"), "--any-base"]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()


def test_merge_replaces_its_own_earlier_result(tmp_path, adapter):
    out = tmp_path / "merged"
    merge(TINY, adapter / DELTA_FILE, out)
    merge(TINY, adapter / DELTA_FILE, out)  # the owner may replace what it wrote
    assert json.loads((out / MARKER_NAME).read_text())["format"] == "polyroute-merged/1"


def test_store_writer_refuses_a_foreign_folder(tmp_path):
    out = tmp_path / "routing.zarr"
    out.mkdir()
    (out / "data.csv").write_text("1,2,3")
    before = tree(out)
    with pytest.raises(UserError) as e:
        write_store(to_dataset(synthetic_shard(), {}), out)
    one_line(e, "no polyroute marker")
    assert tree(out) == before and not list(tmp_path.glob("routing.zarr.tmp-*"))


def test_store_writer_refuses_a_result_of_another_kind(tmp_path, adapter):
    before = tree(adapter)
    with pytest.raises(UserError) as e:
        write_store(to_dataset(synthetic_shard(), {}), adapter)
    one_line(e, "a polyroute-adapter/1 result", "expected polyroute-store/1")
    assert tree(adapter) == before


def test_second_writer_of_a_store_fails_at_once_and_leaves_the_live_temporary(store):
    before = tree(store)
    holder = _hold_lock(store)
    try:
        with pytest.raises(UserError) as e:
            write_store(to_dataset(synthetic_shard(seed=1), {}), store)
        one_line(e, "being written by another process", f"pid {holder.pid}")
        assert (store.parent / f"{store.name}.tmp-{holder.pid}").is_dir()  # the live writer's work survives
        assert tree(store) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_removes_only_dead_writers_temporaries(tmp_path):
    out = tmp_path / "s.zarr"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f"s.zarr.tmp-{sleeper.pid}"
        dead = tmp_path / "s.zarr.tmp-999999"
        for p in (live, dead):
            p.mkdir()
            (p / "chunk").write_text("x")
        write_store(to_dataset(synthetic_shard(), {}), out)
        assert live.is_dir() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_is_released_when_its_holder_is_killed(store):
    holder = _hold_lock(store)
    holder.kill()
    holder.wait()
    write_store(to_dataset(synthetic_shard(seed=2), {}), store)  # no stale lock blocks the rerun
    assert open_store(store).sizes["language"] == 3 and not (store.parent / "routing.zarr.lock").exists()


def test_evaluate_refuses_a_foreign_output_before_loading_the_model(tmp_path):
    from polyroute.evaluate.variants import BASE
    from polyroute.pipeline.data import download_dataset
    from polyroute.pipeline.evaluate import evaluate

    data = {"swh_Latn": download_dataset("belebele", "swh_Latn", tmp_path / "swh.parquet", splits=["test"],
                                         local_dir=DEMO)}
    out = tmp_path / "eval"
    out.mkdir()
    (out / "mine.json").write_text("{}")
    with pytest.raises(UserError) as e:  # a model that does not exist: the output is refused first
        evaluate(model={"id": str(tmp_path / "no-model")}, variant=BASE, task="belebele", data=data,
                 settings={"limit": 1}, out=out)
    one_line(e, "did not write", "polyroute-eval/1")
    assert (out / "mine.json").read_text() == "{}"


def test_second_evaluator_of_one_output_fails_at_once(tmp_path):
    from polyroute.evaluate.variants import BASE
    from polyroute.pipeline.data import download_dataset
    from polyroute.pipeline.evaluate import evaluate

    data = {"swh_Latn": download_dataset("belebele", "swh_Latn", tmp_path / "swh.parquet", splits=["test"],
                                         local_dir=DEMO)}
    out = tmp_path / "eval"
    holder = _hold_lock(out)
    try:
        with pytest.raises(UserError) as e:
            evaluate(model={"id": str(TINY)}, variant=BASE, task="belebele", data=data, settings={"limit": 1}, out=out)
        one_line(e, "being written by another process")
        assert (tmp_path / f"eval.tmp-{holder.pid}").is_dir() and not out.exists()
    finally:
        holder.kill()
        holder.wait()


# --- 2. every artifact is verified on reading -----------------------------------------------------
def test_a_routing_store_edited_after_writing_is_refused(store):
    zarr.open_array(store / "count", mode="r+")[0, 0, 0] += 1
    before = tree(store)
    with pytest.raises(UserError) as e:
        open_store(store)
    one_line(e, str(store), "differ from those its completion marker recorded", "rerun")
    assert tree(store) == before


def test_a_store_whose_marker_was_forged_still_fails_the_count_invariant(store):
    zarr.open_array(store / "count", mode="r+")[0, 0, 0] += 1
    marker = json.loads((store / MARKER_NAME).read_text())
    marker["sha256"] = _aggregate_digest(xr.open_zarr(store, consolidated=True), marker["digested"])
    (store / MARKER_NAME).write_text(json.dumps(marker))
    with pytest.raises(UserError) as e:
        open_store(store)
    one_line(e, str(store), "rerun the step that writes it")


def test_an_edited_statistics_store_is_refused(tmp_path):
    stats = tmp_path / "stats.zarr"
    write_store(xr.Dataset({"entropy": (("language", "layer"), np.ones((2, 3)))},
                           coords={"language": ["a", "b"], "layer": [0, 1, 2]}), stats)
    zarr.open_array(stats / "entropy", mode="r+")[0, 0] = 0.5
    with pytest.raises(UserError) as e:
        open_store(stats)
    one_line(e, "differ from those its completion marker recorded")


def test_a_missing_store_is_called_missing_not_incomplete(tmp_path):
    with pytest.raises(UserError) as e:
        open_store(tmp_path / "routing.zarr")
    assert "incomplete" not in one_line(e, "no store at", "run the step that writes it first")


def test_a_store_without_marker_is_incomplete(store):
    (store / MARKER_NAME).unlink()
    with pytest.raises(UserError) as e:
        open_store(store)
    one_line(e, "incomplete", "rerun")


def test_gather_refuses_an_edited_shard_and_writes_nothing(tmp_path, store):
    zarr.open_array(store / "tokens", mode="r+")[0] += 1
    with pytest.raises(UserError) as e:
        gather([store], tmp_path / "gathered.zarr", attrs={})
    one_line(e, str(store))
    assert not (tmp_path / "gathered.zarr").exists()


def test_gather_calls_a_missing_shard_missing(tmp_path):
    with pytest.raises(UserError) as e:
        gather([tmp_path / "0.zarr"], tmp_path / "gathered.zarr", attrs={})
    one_line(e, "is missing", "rerun its extraction")


def test_an_adapter_without_its_marker_is_not_evaluated(adapter):
    from polyroute.evaluate.variants import adapter_variant

    (adapter / MARKER_NAME).unlink()
    with pytest.raises(UserError) as e:
        adapter_variant("rise-swh_Latn", adapter, model={"id": str(TINY)})
    one_line(e, "has no completion marker", "rerun train_subnetwork")


def test_a_delta_with_nan_is_refused(tmp_path, tiny_model):
    shape = tiny_model.get_parameter(EXPERTS).shape
    bad = torch.ones(1, *shape[1:])
    bad[0, 0, 0] = float("nan")
    adapter = finished_adapter(tmp_path / "a", tiny_model, TINY, {EXPERTS: (torch.tensor([0]), bad)})
    with pytest.raises(UserError) as e:
        read_adapter(adapter)
    one_line(e, EXPERTS, "NaN or infinite", "retrain")


def test_merge_refuses_a_non_finite_delta_and_writes_nothing(tmp_path, tiny_model):
    shape = tiny_model.get_parameter(EXPERTS).shape
    inf = torch.full((1, *shape[1:]), float("inf"))
    adapter = finished_adapter(tmp_path / "a", tiny_model, TINY, {EXPERTS: (torch.tensor([0]), inf)})
    with pytest.raises(UserError) as e:
        merge(TINY, adapter / DELTA_FILE, tmp_path / "merged")
    one_line(e, "NaN or infinite")
    assert not (tmp_path / "merged").exists()


def test_a_delta_of_another_model_with_the_same_shapes_is_refused(tmp_path, tiny_model):
    from polyroute.evaluate.variants import adapter_variant

    other = tmp_path / "other-model"
    shutil.copytree(TINY, other)  # same architecture and shapes: only the name tells them apart
    shape = tiny_model.get_parameter(EXPERTS).shape
    adapter = finished_adapter(tmp_path / "a", tiny_model, other, {EXPERTS: (torch.tensor([0]), torch.ones(1, *shape[1:]))})
    with pytest.raises(UserError) as e:
        adapter_variant("rise-swh_Latn", adapter, model={"id": str(TINY)})
    one_line(e, "was trained on", str(other), "apply it to the model it was trained on")
    with pytest.raises(UserError) as e:
        merge(TINY, adapter / DELTA_FILE, tmp_path / "merged")
    one_line(e, "was trained on")
    assert not (tmp_path / "merged").exists()


def test_a_delta_for_another_revision_is_refused(tmp_path, tiny_model):
    shape = tiny_model.get_parameter(EXPERTS).shape
    adapter = finished_adapter(tmp_path / "a", tiny_model, TINY, {EXPERTS: (torch.tensor([0]), torch.ones(1, *shape[1:]))},
                               revision="v1")
    with pytest.raises(UserError) as e:
        read_adapter(adapter, TINY, "v2")
    one_line(e, "revision v1", "revision v2")


def test_a_delta_whose_base_shapes_differ_is_refused_before_any_weight_changes(tmp_path, tiny_model):
    from polyroute.train.artifacts import apply_delta

    shape = tiny_model.get_parameter(EXPERTS).shape
    path = tmp_path / DELTA_FILE
    record = base_record(tiny_model, TINY, None, [EXPERTS])
    record["base_shapes"] = json.dumps({EXPERTS: [shape[0] * 2, *shape[1:]]})  # trained on a wider model
    save_delta(path, {EXPERTS: (torch.tensor([0]), torch.ones(1, *shape[1:]))}, record)
    before = tiny_model.get_parameter(EXPERTS).detach().clone()
    with pytest.raises(UserError) as e:
        apply_delta(tiny_model, path)
    one_line(e, "has shape", "apply the delta to the model it was trained on")
    assert torch.equal(tiny_model.get_parameter(EXPERTS), before)


def test_a_delta_without_base_record_is_refused(tmp_path, tiny_model):
    shape = tiny_model.get_parameter(EXPERTS).shape
    adapter = tmp_path / "a"
    adapter.mkdir()
    save_delta(adapter / DELTA_FILE, {EXPERTS: (torch.tensor([0]), torch.ones(1, *shape[1:]))})
    write_marker(adapter, {"format": "polyroute-adapter/1"})
    with pytest.raises(UserError) as e:
        read_adapter(adapter, TINY)
    one_line(e, "records no base model", "retrain")


def test_a_truncated_delta_is_one_line(adapter):
    data = (adapter / DELTA_FILE).read_bytes()
    (adapter / DELTA_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as e:
        load_delta(adapter / DELTA_FILE)
    one_line(e, str(adapter / DELTA_FILE), "not a readable safetensors file")


# --- 3. no surprise code --------------------------------------------------------------------------
def _checkpoint_with_code(tmp_path: Path, model_type: str | None) -> tuple[Path, Path]:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(TINY, ckpt)
    sentinel = tmp_path / "code-ran"
    config = json.loads((ckpt / "config.json").read_text())
    if model_type is not None:
        config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig",
                          "AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (ckpt / "config.json").write_text(json.dumps(config))
    for name in ("configuration_evil.py", "modeling_evil.py"):
        (ckpt / name).write_text(f"open({str(sentinel)!r}, 'w').write('ran')\n"
                                 "from transformers import PretrainedConfig\n"
                                 "class EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n")
    return ckpt, sentinel


def test_shipped_code_never_runs_for_a_model_type_transformers_implements(tmp_path):
    from polyroute.models.loading import load_config

    ckpt, sentinel = _checkpoint_with_code(tmp_path, None)
    config = load_config(str(ckpt), trust_remote_code=True)
    assert type(config).__name__ == "Qwen3MoeConfig" and not sentinel.exists()


def test_shipped_code_of_an_unknown_type_is_announced_by_name(tmp_path, caplog):
    from polyroute.models.remote_code import allowed_remote_code

    ckpt, sentinel = _checkpoint_with_code(tmp_path, "evil_moe")
    with caplog.at_level(logging.WARNING):
        assert allowed_remote_code(str(ckpt), None, True)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "configuration_evil.py, modeling_evil.py" in warning[0]
    assert "RUNNING CODE SHIPPED WITH" in warning[0] and not sentinel.exists()


def test_shipped_code_without_trust_is_a_config_error(tmp_path):
    from polyroute.pipeline.model_info import model_info

    ckpt, sentinel = _checkpoint_with_code(tmp_path, "evil_moe")
    with pytest.raises(UserError) as e:
        model_info({"id": str(ckpt), "revision": None, "trust_remote_code": False}, tmp_path / "info.json")
    one_line(e, "'model.trust_remote_code'", "ships its own code")
    assert not sentinel.exists() and not (tmp_path / "info.json").exists()


# --- 4. fail before the expensive work ------------------------------------------------------------
def _local(tmp_path: Path) -> Path:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(TINY, ckpt)
    return ckpt


@pytest.mark.parametrize("step", ["model_info", "download_model"])
def test_a_mistyped_local_path_is_not_a_hub_id(tmp_path, step):
    from polyroute.pipeline import model_info as steps

    with pytest.raises(UserError) as e:
        getattr(steps, step)({"id": "./resources/models/polyroute-tiny", "revision": None, "trust_remote_code": False},
                             tmp_path / "out.json")
    one_line(e, "model.id", "no checkpoint directory at ./resources/models/polyroute-tiny", "fix the path")
    assert not (tmp_path / "out.json").exists()


def test_hub_ids_are_not_taken_for_paths():
    from polyroute.models.checkpoint import local_checkpoint

    assert local_checkpoint("Qwen/Qwen3-30B-A3B") is None and local_checkpoint("gpt2") is None
    assert local_checkpoint(TINY) == TINY


def test_loading_a_mistyped_path_is_one_line_not_a_hub_lookup(tmp_path):
    from polyroute.models.loading import load_model

    with pytest.raises(UserError) as e:
        load_model(str(tmp_path / "models" / "typo"), device="cpu")
    one_line(e, "no checkpoint directory at")


def test_a_truncated_weight_file_fails_download_model(tmp_path):
    from polyroute.pipeline.model_info import download_model

    ckpt = _local(tmp_path)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(UserError) as e:
        download_model({"id": str(ckpt), "revision": None}, tmp_path / "weights.json")
    one_line(e, str(weights), "truncated", "download the checkpoint again")
    assert not (tmp_path / "weights.json").exists()


def test_missing_weights_fail_model_info(tmp_path):
    from polyroute.pipeline.model_info import model_info

    ckpt = _local(tmp_path)
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(UserError) as e:
        model_info({"id": str(ckpt), "revision": None, "trust_remote_code": False}, tmp_path / "info.json")
    one_line(e, "no *.safetensors weights", "pickled", "convert them")


def test_a_malformed_config_fails_model_info(tmp_path):
    from polyroute.pipeline.model_info import model_info

    ckpt = _local(tmp_path)
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(UserError) as e:
        model_info({"id": str(ckpt), "revision": None, "trust_remote_code": False}, tmp_path / "info.json")
    one_line(e, str(ckpt / "config.json"), "not valid JSON")


def test_an_index_naming_a_missing_shard_fails(tmp_path):
    from polyroute.pipeline.model_info import download_model

    ckpt = _local(tmp_path)
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(UserError) as e:
        download_model({"id": str(ckpt), "revision": None}, tmp_path / "weights.json")
    one_line(e, "model-00002-of-00002.safetensors", "missing")


def _extract(tmp_path: Path, files: list[Path], languages: list[str]) -> None:
    from polyroute.pipeline.routing import extract_routing

    extract_routing(data_files=files, dataset="flores_plus", split="dev", languages=languages,
                    model={"id": str(tmp_path / "no-model")}, extraction={}, shard=0, shards=1,
                    out=tmp_path / "shard.zarr", run_config={})


def test_a_language_without_rows_fails_before_extraction(tmp_path):
    from polyroute.pipeline.data import download_dataset

    swh = download_dataset("flores_plus", "swh_Latn", tmp_path / "swh.parquet", splits=["dev"], local_dir=DEMO)
    eng = download_dataset("flores_plus", "eng_Latn", tmp_path / "eng.parquet", splits=["devtest"], local_dir=DEMO)
    with pytest.raises(UserError) as e:  # the model does not exist: the data check comes first
        _extract(tmp_path, [swh, eng], ["swh_Latn", "eng_Latn"])
    one_line(e, "language eng_Latn has no records in split 'dev'", "remove it from the config's languages")
    assert not (tmp_path / "shard.zarr").exists()


def test_an_empty_data_file_is_named(tmp_path):
    import pandas as pd

    empty = tmp_path / "swh.parquet"
    pd.DataFrame({"split": [], "language": [], "text": []}).to_parquet(empty)
    with pytest.raises(UserError) as e:
        _extract(tmp_path, [empty], ["swh_Latn"])
    one_line(e, str(empty), "no records", "rerun download_dataset")


def test_a_corrupt_data_file_is_named(tmp_path):
    bad = tmp_path / "swh.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(UserError) as e:
        _extract(tmp_path, [bad], ["swh_Latn"])
    one_line(e, str(bad), "not a readable parquet file")


def test_a_missing_data_file_is_named(tmp_path):
    with pytest.raises(UserError) as e:
        _extract(tmp_path, [tmp_path / "swh.parquet"], ["swh_Latn"])
    one_line(e, "no data file at", "run download_dataset")


def _local_jsonl(tmp_path: Path, text: str) -> Path:
    from polyroute.data.loading import local_path
    from polyroute.data.registry import get_spec

    path = local_path(tmp_path / "mirror", get_spec("flores_plus"), "swh_Latn", "dev")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty (no records)"),
    ('{"id": 1, "text": "ok"}\n{"id": 2, "text": \n', "line 2 is not JSON"),
    ("[1, 2]\n", "line 1 is not a JSON object"),
])
def test_a_bad_local_data_file_is_named_with_its_line(tmp_path, text, message):
    from polyroute.pipeline.data import download_dataset

    path = _local_jsonl(tmp_path, text)
    with pytest.raises(UserError) as e:
        download_dataset("flores_plus", "swh_Latn", tmp_path / "swh.parquet", splits=["dev"], local_dir=tmp_path / "mirror")
    one_line(e, str(path), message)
    assert not (tmp_path / "swh.parquet").exists()


def test_a_record_without_its_field_is_named(tmp_path):
    from polyroute.pipeline.data import download_dataset

    _local_jsonl(tmp_path, '{"id": 1, "iso_639_3": "swh", "iso_15924": "Latn"}\n')
    with pytest.raises(UserError) as e:
        download_dataset("flores_plus", "swh_Latn", tmp_path / "swh.parquet", splits=["dev"], local_dir=tmp_path / "mirror")
    one_line(e, "flores_plus/swh_Latn/dev: record 0", "lacks field(s) ['text']")


def test_evaluate_reads_the_delta_before_the_model(tmp_path, adapter):
    from polyroute.pipeline.evaluate import evaluate_variant

    (adapter / DELTA_FILE).write_bytes(b"\x00" * 16)
    with pytest.raises(UserError) as e:  # the model does not exist: the delta is read first
        evaluate_variant(model={"id": str(tmp_path / "no-model")}, variant="rise-swh_Latn", source=str(adapter),
                         kind="adapter", strength=None, task="belebele", data={}, settings={}, out=tmp_path / "e")
    one_line(e, "not a readable safetensors file")


# --- 5. one line from the command line ------------------------------------------------------------
def test_cli_merge_over_the_base_is_one_line(tmp_path, adapter, capsys):
    base = tmp_path / "base"
    shutil.copytree(TINY, base)
    before = tree(base)
    cli_line(capsys, ["merge", str(base), str(adapter), str(base)], "polyroute merge: error:", "base model")
    assert tree(base) == before


def test_cli_merge_of_an_unfinished_adapter_is_one_line(tmp_path, adapter, capsys):
    (adapter / MARKER_NAME).unlink()
    cli_line(capsys, ["merge", str(TINY), str(adapter), str(tmp_path / "m")], "no completion marker")
    assert not (tmp_path / "m").exists()


def test_cli_step_on_a_missing_store_is_one_line(tmp_path, capsys):
    cli_line(capsys, ["gather_routing", "--shard-paths", str(tmp_path / "0.zarr"), "--out", str(tmp_path / "g.zarr")],
             "polyroute gather_routing: error:", "is missing")


def test_cli_step_on_an_edited_store_is_one_line(tmp_path, store, capsys):
    zarr.open_array(store / "count", mode="r+")[1, 1, 1] += 3
    cli_line(capsys, ["gather_routing", "--shard-paths", str(store), "--out", str(tmp_path / "g.zarr")],
             "completion marker recorded")
    assert not (tmp_path / "g.zarr").exists()


def test_cli_step_with_a_model_block_without_id_is_one_line(tmp_path, capsys):
    cli_line(capsys, ["download_model", "--model", "{}", "--out", str(tmp_path / "w.json")], "needs an 'id'")


def test_cli_os_error_names_the_file(tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    cli_line(capsys, ["download_model", "--model", json.dumps({"id": str(TINY)}), "--out",
                      str(blocker / "model" / "weights.json")], str(blocker))
    assert blocker.read_text() == "a file where a folder should be"


def test_inspect_reports_an_edited_store_as_damaged(store, capsys):
    zarr.open_array(store / "count", mode="r+")[0, 0, 0] += 1
    assert main(["inspect", str(store)]) == 0
    assert "DAMAGED" in capsys.readouterr().out.splitlines()[0]


def test_a_snakemake_job_ends_a_user_error_with_one_line(tmp_path):
    log = tmp_path / "job.log"
    code = ("from polyroute.logs import log_to\nfrom polyroute.errors import UserError\n"
            f"with log_to({str(log)!r}):\n    raise UserError('data file x.parquet: no records; rerun download_dataset')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: data file x.parquet: no records; rerun download_dataset (log: {log})"]
    assert "Traceback" not in log.read_text() and "no records" in log.read_text()


def test_every_step_help_shows_its_whole_first_paragraph(capsys):
    import inspect

    from polyroute.cli import build_parser
    from polyroute.pipeline.commands import STEPS, step_function

    for step in STEPS:
        with pytest.raises(SystemExit):
            build_parser(step).parse_args([step, "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        first = " ".join((inspect.getdoc(step_function(step)) or "").split("\n\n")[0].split())
        assert first in shown, (step, first)
