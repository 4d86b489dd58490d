"""Benchmark routing capture: overhead vs plain forward passes, vs output_router_logits, bytes, scaling.

One process; every ratio compares timings taken in this run, variants interleaved (shared machines are
noisy) and the median of the repeats kept.

    .venv/bin/python bench/bench_capture.py [--max-tokens 100000] [--device cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from polyroute.models import get_adapter
from polyroute.models.tiny import tiny_config, tiny_model, tiny_tokenizer
from polyroute.routing import capture as capture_module
from polyroute.routing.capture import _pad, _plan_batches
from polyroute.routing.store import to_dataset, write_store
from polyroute.routing.stream import extract_shard, extract_to_store

LANGS = ["eng_Latn", "fra_Latn", "deu_Latn", "swh_Latn"]


def make_texts(total_tokens: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Random printable texts of 32..256 characters (one token per character) summing to ~total_tokens."""
    rng = np.random.default_rng(seed)
    texts, langs, n = [], [], 0
    while n < total_tokens:
        length = int(rng.integers(32, 257))
        texts.append("".join(chr(c) for c in rng.integers(32, 127, size=length)))
        langs.append(LANGS[len(texts) % len(LANGS)])
        n += length + 1  # BOS
    return texts, langs


def bytes_on_disk(shard) -> dict[str, int]:
    """Bytes of each per-token array once the shard is written as a routing store."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shard.zarr"
        write_store(to_dataset(shard, {"model": "bench"}), path)
        names = ("expert_ids", "expert_weights", "token_id", "token_sequence")
        return {n: sum(f.stat().st_size for f in (path / n).rglob("*") if f.is_file()) for n in names}


def bench_config(args: argparse.Namespace):
    return tiny_config(
        "qwen3_moe", hidden_size=args.hidden, intermediate_size=2 * args.hidden, moe_intermediate_size=args.hidden // 2,
        num_experts=args.experts, num_experts_per_tok=args.top_k, num_hidden_layers=args.layers,
        num_attention_heads=8, num_key_value_heads=4, head_dim=args.hidden // 8, max_position_embeddings=1024,
    )


def plain_forward(model, tokenizer, texts, batch_tokens, router_logits=False):
    """The same batches as the capture, through the same module, with no hooks (or the naive alternative:
    the full causal LM with output_router_logits=True, as an extractor built on it would run)."""
    token_ids = tokenizer(texts, truncation=True, max_length=512)["input_ids"]
    device = next(model.parameters()).device
    with torch.inference_mode():
        for rows in _plan_batches([len(t) for t in token_ids], batch_tokens):
            ids, mask = _pad(token_ids, rows, tokenizer.pad_token_id, tokenizer.padding_side)
            pos = (mask.cumsum(-1) - 1).clamp_min(0)
            kw = dict(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device), use_cache=False)
            if router_logits:
                out = model(**kw, output_router_logits=True)
                [t.float().softmax(-1) for t in out.router_logits]  # an extractor needs at least the soft distribution
            else:
                model.model(**kw)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def hook_share(run) -> float:
    """Fraction of a capture run spent inside the router hooks (CPU only, where ops are synchronous)."""
    original = capture_module.RoutingCapture._record
    spent = [0.0]

    def timed_record(self, *a):
        t0 = time.perf_counter()
        original(self, *a)
        spent[0] += time.perf_counter() - t0

    capture_module.RoutingCapture._record = timed_record
    try:
        total = timed(run, "cpu")
    finally:
        capture_module.RoutingCapture._record = original
    return spent[0] / total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-tokens", type=int, default=100_000)
    p.add_argument("--overhead-tokens", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--experts", type=int, default=64)
    p.add_argument("--top-k", type=int, default=8)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = tiny_model(bench_config(args)).to(args.device)
    adapter = get_adapter(model)
    tok = tiny_tokenizer()
    print(f"device {args.device}, threads {args.threads}, torch {torch.__version__}; qwen3_moe hidden {args.hidden}, "
          f"E={args.experts}, k={args.top_k}, {args.layers} MoE layers, batch_tokens {args.batch_tokens}")

    texts, langs = make_texts(args.overhead_tokens)
    ids, par = [str(i) for i in range(len(texts))], [str(i) for i in range(len(texts))]

    def capture(per_token: bool):
        return lambda: extract_shard(model, tok, adapter, texts, langs, ids, par, languages=LANGS,
                                     batch_tokens=args.batch_tokens, max_length=512, per_token=per_token)

    variants = {
        "plain": lambda: plain_forward(model, tok, texts, args.batch_tokens),
        "capture": capture(False),
        "capture+per_token": capture(True),
        "output_router_logits": lambda: plain_forward(model, tok, texts, args.batch_tokens, router_logits=True),
    }
    for fn in variants.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn, args.device))
    med = {name: min(t) for name, t in times.items()}
    ntok = sum(len(t) + 1 for t in texts)
    print(f"\n## overhead on {ntok} tokens (best of {args.repeats}, interleaved; min is the least disturbed by other load)")
    for name, t in med.items():
        print(f"{name:22s} {t:8.3f} s  {ntok / t:10.0f} tok/s  x{t / med['plain']:.3f} vs plain")
    print(f"capture vs output_router_logits: x{med['capture'] / med['output_router_logits']:.3f}")
    print(f"medians: " + ", ".join(f"{n} {statistics.median(t):.3f}s" for n, t in times.items()))
    if args.device == "cpu":  # CPU ops are synchronous: time inside the hooks is their real cost
        for per_token in (False, True):
            share = hook_share(capture(per_token))
            print(f"time inside the router hooks, per_token={per_token}: {100 * share:.2f}% of the capture run")

    r = capture(True)()
    n_tok = r.expert_ids.shape[0]
    per_layer = (r.expert_ids.nbytes + r.expert_weights.nbytes) / (n_tok * len(r.layers))
    with_tok = per_layer + (r.token_id.nbytes + r.token_sequence.nbytes) / (n_tok * len(r.layers))
    print(f"\n## per-token output: {per_layer:.2f} B/token/layer (ids+weights; raw k*(1+2) = {args.top_k * 3}), "
          f"{with_tok:.2f} with token_id/token_sequence")
    disk = bytes_on_disk(r)
    print("on disk (Zarr, compressed): " + ", ".join(
        f"{name} {size / (n_tok * len(r.layers)):.2f}" for name, size in disk.items()) + " B/token/layer; "
          f"ids+weights {(disk['expert_ids'] + disk['expert_weights']) / (n_tok * len(r.layers)):.2f}")

    print("\n## scaling (per_token on; each size and variant in a fresh process, so peaks do not mask each other)")
    print("tokens   plain_s  capture_s   tok/s  plain_rss+MiB  capture_rss+MiB  store_MiB  cuda_max_alloc_MiB")
    ctx = multiprocessing.get_context("spawn")
    n = 1000
    while n <= args.max_tokens:
        plain, cap = (_in_fresh_process(ctx, scaling_run, vars(args), n, capture) for capture in (False, True))
        print(f"{cap['tokens']:8d} {plain['seconds']:8.2f} {cap['seconds']:10.2f} {cap['tokens'] / cap['seconds']:7.0f} "
              f"{plain['rss_growth']:14.0f} {cap['rss_growth']:16.0f} {cap['output']:10.1f} {cap['cuda']:19.1f}")
        n *= 10
    print("rss+ = peak resident memory during the run minus before it; capture = extraction streamed into "
          "the shard's store (extract_to_store, as the extract_routing rule runs it); store_MiB = its size on disk")


def _in_fresh_process(ctx, fn, *args):
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def scaling_run(settings: dict, n_tokens: int, capture: bool) -> dict[str, float]:
    """One extraction (or the plain forward of the same batches) on ~n_tokens, in a process of its own."""
    args = argparse.Namespace(**settings)
    torch.set_num_threads(args.threads)
    model = tiny_model(bench_config(args)).to(args.device)
    tok = tiny_tokenizer()
    texts, langs = make_texts(n_tokens, seed=n_tokens)
    ids = [str(i) for i in range(len(texts))]
    sampler = RssSampler()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "shard.zarr"
        if capture:  # what the extract_routing rule runs: windows streamed into the shard's store
            run = lambda: extract_to_store(model, tok, get_adapter(model), texts, langs, ids, ids, store,  # noqa: E731
                                           {"model": "bench"}, languages=LANGS, batch_tokens=args.batch_tokens,
                                           max_length=512, per_token=True)
        else:
            run = lambda: plain_forward(model, tok, texts, args.batch_tokens)  # noqa: E731
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with sampler:
            t0 = time.perf_counter()
            run()
            sync(args.device)
            seconds = time.perf_counter() - t0
        output = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) if capture else 0
    return {"tokens": sum(len(t) + 1 for t in texts), "seconds": seconds, "rss_growth": sampler.growth_mib,
            "output": output / 2**20, "cuda": torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else float("nan")}


class RssSampler:
    """Peak resident set above its value at entry, sampled every 10 ms in a thread."""

    def __enter__(self) -> "RssSampler":
        self.base = self.peak = _rss_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())
        self.growth_mib = self.peak - self.base


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


if __name__ == "__main__":
    main()
