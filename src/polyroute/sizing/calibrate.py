"""`polyroute calibrate`: the throughput figures of the configured model on this machine's GPU.

Times, on the real model loaded as the workflow loads it, a short run of each path the GPU rules take:
the plain forward, `extract_to_store` (extract_routing), `loglikelihoods` (choice and perplexity
tasks) and `generate_greedy` (generation tasks) at the run's evaluation batch size. The file it writes
has the fields of `polyroute.sizing.throughput.REFERENCE`; point `cluster.throughput` (or `polyroute
plan --throughput`) at it. Training is not timed (it needs the deepspeed launcher): its figure is the
measured forward rate times the reference's training / forward ratio, and the file says so.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polyroute.sizing.model import model_size
from polyroute.sizing.throughput import load_throughput

log = logging.getLogger(__name__)

__all__ = ["calibration_texts", "calibrate"]

DEMO_TEXT = "resources/demo/flores_plus"


def calibration_texts(run_config: Mapping[str, Any], count: int) -> list[str]:
    """`count` texts of the run's routing data when downloaded, else of the demo FLORES bundle."""
    from polyroute.sizing.work import DataSource

    from polyroute.data import get_spec

    routing = run_config["datasets"]["routing"]
    split = get_spec(routing["name"]).check_split(routing.get("split"))
    data = DataSource(run_config)
    texts: list[str] = []
    for language in run_config["languages"]:
        frame = data.records(routing["name"], language, split)
        if frame is not None and "text" in frame:
            texts += frame["text"].tolist()
    if not texts:
        texts = [json.loads(line)["text"] for path in sorted(Path(DEMO_TEXT).glob("*/dev.jsonl"))
                 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise ValueError(f"no text to time with: neither the run's routing data nor {DEMO_TEXT}")
    return [texts[i % len(texts)] for i in range(count)]


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _timed(run) -> float:
    _synchronize()
    start = time.perf_counter()
    run()
    _synchronize()
    return time.perf_counter() - start


def _forward_rate(net: Any, tokenizer: Any, texts: Sequence[str], batch: int, max_length: int) -> float:
    import torch

    device = next(net.parameters()).device
    batches = [tokenizer(list(texts[i:i + batch]), return_tensors="pt", padding=True, truncation=True,
                         max_length=max_length) for i in range(0, len(texts), batch)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    def run() -> None:
        with torch.no_grad():
            for b in batches:
                net(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device))

    run()  # warm-up: kernels, allocator
    return tokens / _timed(run)


def calibrate(run_config: Mapping[str, Any], out: str | os.PathLike, *, sequences: int = 256,
              new_tokens: int = 32, device: str = "auto") -> dict[str, Any]:
    """Time each path on `sequences` texts (and one generation batch of `new_tokens` steps); write and
    return the throughput table."""
    import torch

    from polyroute.evaluate.generation import generate_greedy
    from polyroute.evaluate.scoring import encode_requests, loglikelihoods
    from polyroute.models import get_adapter
    from polyroute.models.loading import load_configured_model
    from polyroute.routing.stream import extract_to_store

    if sequences < 1 or new_tokens < 1:
        raise ValueError(f"sequences and new_tokens must be >= 1, got {sequences} and {new_tokens}")
    size = model_size(run_config["model"])
    texts = calibration_texts(run_config, sequences)
    extraction, evaluation = run_config["extraction"], run_config["evaluation"]
    max_length, batch = int(extraction["max_length"]), int(evaluation["batch_size"])
    net, tokenizer = load_configured_model(run_config["model"], device=device)
    adapter = get_adapter(net)

    forward = _forward_rate(net, tokenizer, texts, batch, max_length)
    n, language = len(texts), run_config["languages"][0]
    with tempfile.TemporaryDirectory() as tmp:
        def extract() -> None:
            extract_to_store(net, tokenizer, adapter, texts, [language] * n, [str(i) for i in range(n)],
                             [str(i) for i in range(n)], Path(tmp) / "routing.zarr", {"calibration": True},
                             languages=[language], batch_tokens=int(extraction["batch_tokens"]),
                             max_length=max_length, per_token=bool(extraction["per_token"]))
        extract_tokens = sum(min(len(ids), max_length) for ids in tokenizer(list(texts))["input_ids"])
        extract_rate = extract_tokens / _timed(extract)
    requests = encode_requests(tokenizer, [(text, " " + text.split()[-1]) for text in texts if text.split()])
    score_tokens = sum(len(r.context) + len(r.continuation) for r in requests)
    score_rate = score_tokens / _timed(lambda: loglikelihoods(net, requests, batch_size=batch, max_length=max_length))
    prompts = texts[:batch]
    outputs: list[str] = []
    seconds = _timed(lambda: outputs.extend(generate_greedy(
        net, tokenizer, prompts, until=[], max_new_tokens=new_tokens, batch_size=batch, max_length=max_length)))
    steps = max([len(ids) for ids in tokenizer(outputs, add_special_tokens=False)["input_ids"]] + [1])
    reference = load_throughput(size)
    table = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (no GPU)",
        "model": {"id": str(run_config["model"]["id"]), "total_params": size.total_params,
                  "active_params": size.active_params, "bytes_per_param": size.bytes_per_param},
        "forward_tokens_per_s": forward,
        "extract_tokens_per_s": extract_rate,
        "score_tokens_per_s": score_rate,
        "generate_steps_per_s": {str(len(prompts)): steps / seconds},
        # training is not timed: this forward rate times the reference's training / forward ratio
        "train_tokens_per_s": forward * reference.rate("train") / reference.rate("forward"),
        "train_source": "not timed: forward_tokens_per_s x the reference figures' train / forward ratio",
        "load_gb_per_s": reference.load_gb_per_s,
        "startup_s": reference.startup_s,
        "measured": {"sequences": n, "new_tokens": new_tokens, "batch_size": batch, "max_length": max_length,
                     "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")},
    }
    from polyroute.atomic import atomic_write_json

    atomic_write_json(out, table)
    log.info("throughput of %s written to %s", size.name, out)
    return table
