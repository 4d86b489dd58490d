"""Job sizing (polyroute.sizing): the arithmetic by hand, the work counted from data, the plan offline."""

from __future__ import annotations

import errno
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from polyroute.cli import main
from polyroute.models.shapes import published_dimensions
from polyroute.sizing.jobs import GPU_RULES, Job, gpu_jobs
from polyroute.sizing.model import active_parameters, gpus_needed, host_memory_mb, model_size
from polyroute.sizing.plan import format_plan, load_run_config, make_plan
from polyroute.sizing.resources import Sizing, gpu_seconds, rule_resources, runtime_minutes
from polyroute.sizing.throughput import REFERENCE, load_throughput
from polyroute.sizing.work import DataSource, Work, routing_work

REPO = Path(__file__).resolve().parents[2]
QWEN3 = {"id": "Qwen/Qwen3-30B-A3B", "dtype": "bfloat16"}
MIXTRAL = {"id": "mistralai/Mixtral-8x7B-v0.1", "dtype": "bfloat16"}


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(REPO)  # config.yaml, configs/, resources/ are read relative to the checkout


# --- arithmetic, by hand ---------------------------------------------------------------------------

def test_gpus_follow_the_weights_and_the_headroom():
    usable = 80e9 * 0.8  # 64 GB a card
    assert gpus_needed(int(usable), 80, 0.2) == 1  # exactly fits
    assert gpus_needed(int(usable) + 1, 80, 0.2) == 2
    assert gpus_needed(int(2 * usable) + 1, 80, 0.2) == 3
    assert gpus_needed(1, 80, 0.0) == 1
    with pytest.raises(ValueError, match="gpu_headroom"):
        gpus_needed(1, 80, 1.0)


def test_mixtral_needs_two_cards_qwen3_one():
    mixtral, qwen3 = model_size(MIXTRAL), model_size(QWEN3)
    assert mixtral.weights_bytes == 2 * 46_702_792_704  # 93.4 GB in bf16
    assert gpus_needed(mixtral.weights_bytes, 80, 0.2) == 2
    assert gpus_needed(qwen3.weights_bytes, 80, 0.2) == 1
    assert gpus_needed(mixtral.weights_bytes, 141, 0.2) == 1  # one H200 holds it


def test_active_parameters_by_hand():
    # Mixtral: all but the input embedding (32000 x 4096) and, per layer, 6 of 8 experts (3 x 4096 x 14336)
    dims = published_dimensions("mistralai/Mixtral-8x7B-v0.1")
    assert active_parameters(dims) == 46_702_792_704 - 32000 * 4096 - 32 * 6 * 3 * 4096 * 14336
    # Qwen3-30B-A3B: 120 of 128 experts idle in 48 layers (3 x 2048 x 768 each); the card says 3.3 B
    # activated with the embedding (151936 x 2048 = 0.31 B)
    qwen3 = model_size(QWEN3)
    assert qwen3.active_params == 30_532_122_624 - 151936 * 2048 - 48 * 120 * 3 * 2048 * 768
    assert (qwen3.active_params + 151936 * 2048) / 1e9 == pytest.approx(3.3, abs=0.06)


def test_host_memory_by_hand():
    weights = 61_064_245_248  # Qwen3-30B-A3B in bf16
    assert host_memory_mb(weights) == 76000  # ceil((61,064 x 1.1 + 8,000) / 1,000) x 1,000
    assert host_memory_mb(weights, training=True) == 143000  # two copies: 134,341 + 8,000
    assert host_memory_mb(1000) == 16000  # the floor


def test_runtime_by_hand():
    assert runtime_minutes(3000, 600, 2.0, 15) == 120  # 2 x (600 + 3000) s = 120 min
    assert runtime_minutes(3000, 600, 2.0, 15, attempt=2) == 240  # a retry asks for twice as much
    assert runtime_minutes(1, 1, 2.0, 15) == 15  # the floor
    assert runtime_minutes(61, 0, 1.0, 1) == 2  # whole minutes, rounded up
    with pytest.raises(ValueError, match="runtime_margin"):
        runtime_minutes(1, 1, 0.5, 15)


def test_reference_figures_apply_unscaled_to_their_model_and_scale_to_others():
    qwen3, mixtral = model_size(QWEN3), model_size(MIXTRAL)
    same = load_throughput(qwen3)
    assert same.scaled_from is None and same.rate("extract") == REFERENCE["extract_tokens_per_s"]
    # 10 items scored: 10 x 2,408 tokens = 10 s, plus 61 decode steps at batch 32 (6.1 steps/s) = 10 s
    assert gpu_seconds(Work("score", 10, 24080, True, 61, 32), same) == pytest.approx(20.0)
    assert same.step_seconds(16) == pytest.approx(1 / 6.1)  # the smallest measured batch >= 16
    assert same.step_seconds(64) == pytest.approx(1 / 2.8)
    assert same.step_seconds(256) == pytest.approx(2 / 2.8)  # beyond 128: in proportion
    other = load_throughput(mixtral)
    assert other.scaled_from == "Qwen/Qwen3-30B-A3B"
    assert other.rate("extract") == pytest.approx(23452 * qwen3.active_params / mixtral.active_params)
    assert other.step_seconds(128) == pytest.approx(mixtral.total_params / qwen3.total_params / 2.8)


def test_a_throughput_file_replaces_the_reference(tmp_path):
    table = {**REFERENCE, "model": {"id": "x", "total_params": 10, "active_params": 5, "bytes_per_param": 2},
             "score_tokens_per_s": 100}
    path = tmp_path / "tp.json"
    path.write_text(json.dumps(table))
    from polyroute.sizing.model import ModelSize

    tp = load_throughput(ModelSize("y", 20, 10, 2), path)  # twice the active parameters: half the rate
    assert tp.rate("score") == pytest.approx(50) and str(path) in tp.source
    with pytest.raises(ValueError, match="no throughput file"):
        load_throughput(ModelSize("y", 20, 10, 2), tmp_path / "missing.json")
    path.write_text(json.dumps({**table, "score_tokens_per_s": 0}))
    with pytest.raises(ValueError, match="positive"):
        load_throughput(ModelSize("y", 20, 10, 2), path)


# --- work from data --------------------------------------------------------------------------------

def test_routing_work_splits_the_sequences_over_shards():
    cfg = load_run_config([])
    data = DataSource(cfg)
    routing, langs, max_length = cfg["datasets"]["routing"], cfg["languages"], cfg["extraction"]["max_length"]
    whole = routing_work(data, routing["name"], routing["split"], langs, max_length)
    shards = [routing_work(data, routing["name"], routing["split"], langs, max_length, shard=i, shards=3)
              for i in range(3)]
    assert whole.exact and whole.items == 100 * len(langs)  # the demo bundle: 100 dev sentences each
    assert sum(s.items for s in shards) == whole.items and sum(s.tokens for s in shards) == whole.tokens
    # the tokenizer's own count, independently
    frames = [data.records(routing["name"], g, routing["split"]) for g in langs]
    texts = [t for f in frames for t in f["text"]]
    assert whole.tokens == sum(min(len(data.tokenizer(t)["input_ids"]), max_length) for t in texts)


def test_choice_tokens_are_the_scorers_distinct_inputs():
    from polyroute.evaluate.fewshot import contexts
    from polyroute.evaluate.scoring import encode_requests
    from polyroute.evaluate.tasks import get_task
    from polyroute.pipeline.evaluate import task_settings
    from polyroute.sizing.work import eval_work

    cfg = load_run_config([])
    data, task = DataSource(cfg), get_task("belebele")
    items = data.records("belebele", "eng_Latn", "test").to_dict(orient="records")
    prompts = contexts(task, items, items, task.code("eng_Latn"), 0)
    requests = [(p, task.target_delimiter + c) for p, item in zip(prompts, items) for c in task.choices(item)]
    # the scorer forwards context + continuation less its last token, once per distinct input
    inputs = {(enc.context + enc.continuation)[:-1] for enc in encode_requests(data.tokenizer, requests)}
    assert len(inputs) == len(items)  # " A" .. " D" are one token: the four choices share one forward
    work = eval_work(data, "belebele", ["eng_Latn"], task_settings(cfg["evaluation"], "belebele"))
    assert work.items == len(items) and work.exact and work.tokens == sum(len(i) for i in inputs)


def test_without_data_items_come_from_the_published_sizes():
    cfg = load_run_config(["configs/qwen3-30b-a3b.yaml"])
    data = DataSource(cfg, data_dir="/nonexistent")
    work = routing_work(data, "flores_plus", "dev", cfg["languages"], 512, shard=0, shards=8)
    total = 997 * len(cfg["languages"])
    assert work.items == total // 8 and work.tokens == work.items * 512 and not work.exact


# --- the plan and the rules' requests --------------------------------------------------------------

def test_demo_plan_is_complete_and_exact():
    plan = make_plan(load_run_config([]))
    assert plan.complete and {r.rule for r in plan.rules} == set(GPU_RULES)
    for r in plan.rules:
        assert r.tokens_exact and r.tokens > 0 and r.gpus == 1 and r.runtime >= 15 and r.mem_mb == 16000, r
    text = "\n".join(format_plan(plan))
    assert "scaled to this model by active parameters per token" in text


@pytest.mark.parametrize("configfile, gpus", [("configs/qwen3-30b-a3b.yaml", 1), ("configs/mixtral-8x7b.yaml", 2)])
def test_real_configs_plan_offline(configfile, gpus):
    plan = make_plan(load_run_config([configfile]))
    rules = {r.rule: r for r in plan.rules}
    for rule in ("extract_routing", "task_routing", "intervention_routing", "evaluate"):
        assert rules[rule].gpus == gpus, rule
    assert rules["train_subnetwork"].gpus == 1  # training.gpus
    assert rules["extract_routing"].jobs == 8 and rules["extract_routing"].items == 997 * 20
    assert not rules["evaluate"].complete and rules["evaluate"].runtime is None  # tokens: after the download
    assert rules["evaluate"].gpu_hours > 0  # generation's decode steps are known from the item counts
    text = "\n".join(format_plan(plan, configfile))
    assert f"cards: {gpus} x 80 GB GPU" in text
    assert ("WARNING: the weights need 2 cards" in text) == (gpus == 2)


def test_job_list_matches_snakemakes_dry_run():
    out = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-n", "-q", "rules", "--cores", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in GPU_RULES and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    jobs = gpu_jobs(load_run_config([]))
    assert counts == {rule: sum(j.rule == rule for j in jobs) for rule in GPU_RULES}


def test_rule_resources_wait_for_the_data_then_size_the_job(tmp_path):
    cfg = load_run_config(["configs/mixtral-8x7b.yaml"])
    resources = rule_resources(cfg, "evaluate", "results/mixtral-8x7b/model/info.json",
                               "results/mixtral-8x7b/model/weights.json")
    assert resources["gpu"]({}, []) == 2 and resources["mem_mb"]({}, []) == 111000
    wildcards = {"variant": "base", "task": "belebele"}
    with pytest.raises(FileNotFoundError) as missing:  # Snakemake sizes the job once the file exists
        resources["runtime"](wildcards, [], 1)
    assert missing.value.errno == errno.ENOENT and missing.value.filename.startswith("resources/data/belebele/")


def test_demo_runtime_from_its_work():
    cfg = load_run_config([])
    sizing = Sizing(cfg)
    job = Job("evaluate", {"variant": "base", "task": "belebele"})
    seconds = gpu_seconds(sizing.work(job), sizing.throughput)
    load = sizing.throughput.load_seconds(sizing.size.weights_bytes)
    assert sizing.runtime(job) == max(15, math.ceil(2.0 * (load + seconds) / 60))


def test_plan_command(capsys):
    assert main(["plan", "--configfile", "configs/mixtral-8x7b.yaml"]) == 0
    out = capsys.readouterr().out
    assert "2 x 80 GB GPU" in out and "evaluate" in out
    assert main(["plan", "--configfile", "nope.yaml"]) == 2


def test_calibrate_on_the_demo_model_on_cpu(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    assert main(["calibrate", "--out", str(out), "--sequences", "8", "--new-tokens", "2", "--device", "cpu"]) == 0
    table = json.loads(out.read_text())
    for key in ("forward_tokens_per_s", "extract_tokens_per_s", "score_tokens_per_s", "train_tokens_per_s"):
        assert table[key] > 0, key
    assert table["model"]["total_params"] == model_size({"id": "resources/models/polyroute-demo-qwen3moe",
                                                         "dtype": "float32"}).total_params
    plan = make_plan(load_run_config([]), out)  # the plan reads it unscaled: same model
    assert plan.sizing.throughput.scaled_from is None
    assert plan.sizing.throughput.rate("score") == pytest.approx(table["score_tokens_per_s"])
