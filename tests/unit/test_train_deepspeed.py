"""polyroute.train through DeepSpeed on the CPU: ZeRO-2/3 vs a plain-PyTorch loop, kill + resume, 2 processes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
# DeepSpeed JIT-compiles a small comm op once (~1-3 min); cache it in the repo's git-ignored folder
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".torch_extensions"))
os.environ.setdefault("DS_ACCELERATOR", "cpu")

from polyroute.models import get_adapter  # noqa: E402
from polyroute.models.tiny import tiny_config, tiny_model, tiny_tokenizer  # noqa: E402
from polyroute.train import attach_deltas, build_plan, delta_parameters, load_delta  # noqa: E402
from polyroute.train.data import BatchOrder, collate, lr_factor, tokenize_texts  # noqa: E402

pytestmark = [pytest.mark.deepspeed, pytest.mark.slow]

TEXTS = [f"the quick brown fox {i} jumps over the lazy dog {i * 7}" for i in range(16)]
SUBNET = {"method": "test", "target": "eng_Latn", "experts": [[0, 1], [0, 5], [2, 3]], "train_routers": False,
          "extra_modules": []}
SETTINGS = {"lr": 1e-3, "epochs": 2, "micro_batch_size": 2, "gradient_accumulation": 2, "max_length": 64,
            "checkpoint_every": 2, "seed": 11}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("base")
    tiny_model(tiny_config("qwen3_moe"), seed=0).save_pretrained(d, safe_serialization=True)
    tiny_tokenizer().save_pretrained(d)
    return d


def reference_deltas(base_dir: Path, settings: dict, world: int = 1) -> dict[str, torch.Tensor]:
    """The same training in plain PyTorch: one process plays every rank's micro-batches."""
    from transformers import AutoModelForCausalLM

    s = {"max_grad_norm": 1.0, **settings}
    tok = tiny_tokenizer()
    seqs = tokenize_texts(tok, TEXTS, s["max_length"])
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True)
    model.config.use_cache = False
    entries = attach_deltas(model, build_plan(model, get_adapter(model), SUBNET))
    params = delta_parameters(entries)
    order = BatchOrder(len(seqs), s["micro_batch_size"], world, s["gradient_accumulation"], s["seed"])
    total = order.steps_per_epoch * s["epochs"]
    opt = torch.optim.AdamW(params, lr=s["lr"], weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda st: lr_factor(st, total, 0.05))
    model.train()
    for step in range(total):
        mbs = order.step_micro_batches(step)
        for ids in mbs:
            (model(**collate([seqs[i] for i in ids], tok.pad_token_id)).loss / len(mbs)).backward()
        torch.nn.utils.clip_grad_norm_(params, s["max_grad_norm"])
        opt.step()
        sched.step()
        opt.zero_grad()
    return {n: e.param.delta.detach() for n, e in entries.items()}


def assert_deltas_close(path: Path, ref: dict[str, torch.Tensor], atol: float = 1e-6) -> None:
    got, _ = load_delta(path)
    assert set(got) == set(ref)
    for name, (rows, d) in got.items():
        assert rows.tolist() == [1, 5] if ".layers.0." in name else rows.tolist() == [3]
        assert d.abs().max() > 1e-4, name  # it trained
        torch.testing.assert_close(d, ref[name], atol=atol, rtol=1e-4, msg=name)


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_matches_plain_pytorch_and_freezes_the_rest(base_dir, tmp_path, stage):
    from transformers import AutoModelForCausalLM

    from polyroute.train import apply_delta, train_subnetwork

    torch.set_num_threads(1)
    out = tmp_path / f"zero{stage}"
    res = train_subnetwork(base_dir, SUBNET, TEXTS, out, {**SETTINGS, "zero_stage": stage})
    assert sorted(p.name for p in out.iterdir()) == [".complete", "delta.safetensors", "loss.png", "settings.json",
                                                     "subnetwork.json", "train_log.csv"]
    marker = json.loads((out / ".complete").read_text())
    assert marker["steps"] == res.steps == 8 and marker["resumed_from"] == 0
    lines = (out / "train_log.csv").read_text().splitlines()
    assert lines[0] == "step,epoch,loss,lr" and len(lines) == 9
    assert json.loads((out / "subnetwork.json").read_text()) == SUBNET
    assert_deltas_close(out / "delta.safetensors", reference_deltas(base_dir, SETTINGS))
    # every parameter outside the selected rows is bit-identical to the base
    base = AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True)
    adapted = apply_delta(AutoModelForCausalLM.from_pretrained(base_dir, use_safetensors=True), out / "delta.safetensors")
    for (name, b), (_, a) in zip(base.named_parameters(), adapted.named_parameters()):
        rows = {0: [1, 5], 2: [3]}.get(int(name.split(".")[2]), []) if ".experts." in name else []
        keep = torch.ones(b.shape[0], dtype=torch.bool)
        keep[rows] = False
        assert torch.equal(a[keep], b[keep]), name
        assert all(not torch.equal(a[r], b[r]) for r in rows), name


def _cli(base_dir: Path, out: Path, settings: dict, launcher: list[str] | None = None) -> list[str]:
    sub = out.parent / "subnetwork.json"
    sub.write_text(json.dumps(SUBNET))
    texts = out.parent / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    args = ["--model", str(base_dir), "--subnetwork", str(sub), "--texts", str(texts), "--out", str(out),
            "--settings", json.dumps(settings)]
    if launcher:  # the deepspeed launcher spells python's -m as --module
        return launcher + ["--module", "polyroute.train"] + args
    return [sys.executable, "-m", "polyroute.train"] + args


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    # a child starts its own world of one even when this process runs under a launcher
    dist_vars = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}
    env = {k: v for k, v in os.environ.items() if k not in dist_vars}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(base_dir, tmp_path):
    settings = {**SETTINGS, "epochs": 12, "checkpoint_every": 3, "gradient_accumulation": 1}  # 96 steps
    from polyroute.train import train_subnetwork

    torch.set_num_threads(1)  # the CLI runs get OMP_NUM_THREADS=1: same float reduction order
    full = tmp_path / "full"
    train_subnetwork(base_dir, SUBNET, TEXTS, full, settings)  # uninterrupted, in this process
    killed = tmp_path / "killed" / "out"
    killed.parent.mkdir()
    proc = subprocess.Popen(_cli(base_dir, killed, settings), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while not (killed / "checkpoints" / "latest").exists():
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # a killed job: no cleanup, no marker
    proc.wait()
    assert not (killed / ".complete").exists() and not (killed / "delta.safetensors").exists()
    subprocess.run(_cli(base_dir, killed, settings), env=_env(), check=True, capture_output=True, timeout=300)
    marker = json.loads((killed / ".complete").read_text())
    assert 0 < marker["resumed_from"] < marker["steps"] == 96
    assert not (killed / "checkpoints").exists()  # removed once the artifacts are written
    a, _ = load_delta(full / "delta.safetensors")
    b, _ = load_delta(killed / "delta.safetensors")
    assert all(torch.equal(a[n][1], b[n][1]) for n in a)  # bit-identical to the uninterrupted run
    # and the same file, byte for byte, although written by another process (metadata order)
    assert (full / "delta.safetensors").read_bytes() == (killed / "delta.safetensors").read_bytes()
    assert (full / "train_log.csv").read_text() == (killed / "train_log.csv").read_text()


def test_two_processes_through_the_deepspeed_launcher(base_dir, tmp_path):
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    if launcher is None:
        pytest.skip("deepspeed launcher not on PATH")
    out = tmp_path / "two" / "out"
    out.parent.mkdir()
    settings = {**SETTINGS, "gradient_accumulation": 1, "zero_stage": 3}
    cmd = _cli(base_dir, out, settings, launcher=[launcher, "--num_gpus", "2", "--master_port", str(_free_port())])
    r = subprocess.run(cmd, env={**_env(), "LOCAL_SIZE": "2"}, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads((out / ".complete").read_text())["world_size"] == 2
    # 2 ranks x 1 accumulation slot = 1 rank x 2 slots of the same data
    assert_deltas_close(out / "delta.safetensors", reference_deltas(base_dir, {**SETTINGS, "zero_stage": 3}))


def test_a_plain_process_group_leaves_no_rendezvous_variables_for_its_children():
    # Exported MASTER_PORT/RANK were inherited by Snakemake jobs started later from the same
    # process, whose own group then failed with EADDRINUSE on the still-bound port.
    code = (
        "import os; from polyroute.train.loop import init_distributed; "
        "assert init_distributed(False) == (0, 1); "
        "leaked = {'RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'} & set(os.environ); "
        "assert not leaked, leaked"
    )
    done = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_zero_buckets_are_sized_to_the_trainable_elements_up_to_deepspeeds_default():
    # A default 5e8-element bucket, allocated afresh each micro-step, made the demo's 3-expert
    # training spend 28 of its 40 s in page faults; a subnetwork needs no more than its own size.
    from polyroute.train.loop import DEEPSPEED_BUCKET, deepspeed_config
    from polyroute.train.settings import TrainSettings

    s = TrainSettings.from_dict({"zero_stage": 2})
    small = deepspeed_config(s, torch.float32, trainable=12_345)["zero_optimization"]
    assert small == {"stage": 2, "reduce_bucket_size": 12_345, "allgather_bucket_size": 12_345}
    large = deepspeed_config(s, torch.float32, trainable=3 * DEEPSPEED_BUCKET)["zero_optimization"]
    assert large["reduce_bucket_size"] == large["allgather_bucket_size"] == DEEPSPEED_BUCKET == 500_000_000


def test_checkpoints_resume_only_for_the_same_settings_and_data(base_dir, tmp_path, caplog):
    """Issue 19: a rerun with another lr (or other texts) discards the old run's checkpoints, with a log line."""
    from polyroute.train import train_subnetwork

    out = tmp_path / "out"
    settings = {**SETTINGS, "keep_checkpoints": True}  # 8 steps, checkpoints after 2, 4 and 6
    assert train_subnetwork(base_dir, SUBNET, TEXTS, out, settings).resumed_from == 0
    with caplog.at_level(logging.WARNING, logger="polyroute.train.loop"):
        changed = train_subnetwork(base_dir, SUBNET, TEXTS, out, {**settings, "lr": 2e-3})
    assert changed.resumed_from == 0
    lines = [r.getMessage() for r in caplog.records if "discarding the checkpoints" in r.getMessage()]
    assert len(lines) == 1 and "lr 0.001 -> 0.002" in lines[0]
    assert json.loads((out / "settings.json").read_text())["lr"] == 2e-3
    # the same settings resume, as before
    assert train_subnetwork(base_dir, SUBNET, TEXTS, out, {**settings, "lr": 2e-3}).resumed_from == 6
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="polyroute.train.loop"):
        other_texts = train_subnetwork(base_dir, SUBNET, TEXTS[::-1], out, {**settings, "lr": 2e-3})
    assert other_texts.resumed_from == 0
    assert any("texts changed" in r.getMessage() for r in caplog.records)
