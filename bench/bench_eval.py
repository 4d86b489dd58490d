"""Benchmark evaluation: items/s of batched log-likelihood scoring and batched greedy generation against
one item at a time, on the demo model and the shipped items, in one process.

Log-likelihood (Belebele, every demo language, 4 choices per item): one forward per choice, one per
item (choices that differ only in their last token share it), and batches of distinct inputs.
Generation (MGSM, every demo language): one prompt at a time vs length-sorted batches, both with
the KV cache. Variants are interleaved and the median of the repeats kept (shared machines are noisy).

    .venv/bin/python bench/bench_eval.py [--repeats 3] [--batch-size 16] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from polyroute.data import load_records
from polyroute.evaluate.generation import generate_greedy
from polyroute.evaluate.scoring import encode_requests, loglikelihoods
from polyroute.evaluate.tasks import get_task
from polyroute.languages import dataset_languages
from polyroute.models.loading import load_model

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo"


def _items(task_name: str) -> tuple[list[dict], list[str]]:
    task = get_task(task_name)
    items, prompts = [], []
    for language in dataset_languages(task.dataset):
        try:
            frame = load_records(task.dataset, language, split=task.test_split, local_dir=DEMO)
        except FileNotFoundError:
            continue
        if not task.supports(language):
            continue
        for row in frame.to_dict(orient="records"):
            items.append(row)
            prompts.append(task.prompt(row, task.code(language)))
    return items, prompts


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _compare(title: str, variants: dict, n_items: int, repeats: int) -> None:
    """Time the variants interleaved, print items/s and the ratio to the first (the baseline)."""
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_timed(fn))
    baseline = next(iter(variants))
    base = statistics.median(times[baseline])
    print(f"\n{title}")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"  {name:<14} {n_items / t:8.2f} items/s   {base / t:5.2f}x of {baseline}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "resources" / "models" / "polyroute-tiny-qwen3moe"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model, tok = load_model(args.model, dtype="float32", device=args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")

    belebele = get_task("belebele")
    items, prompts = _items("belebele")
    requests = [(p, belebele.target_delimiter + c) for row, p in zip(items, prompts) for c in belebele.choices(row)]
    encoded = encode_requests(tok, requests)
    variants = {  # per choice: a naive loop, every choice its own forward
        "per choice": lambda: [loglikelihoods(model, [e], batch_size=1) for e in encoded],
        "per item": lambda: [loglikelihoods(model, encoded[i:i + 4], batch_size=1) for i in range(0, len(encoded), 4)],
        f"batched ({args.batch_size})": lambda: loglikelihoods(model, encoded, batch_size=args.batch_size),
    }
    _compare(f"log-likelihood: {len(items)} Belebele items, {len(requests)} choices", variants, len(items),
             args.repeats)

    mgsm = get_task("mgsm_direct")
    _, gen_prompts = _items("mgsm_direct")
    until = ["Question:", "</s>", "<|im_end|>"]  # one stop list for all languages: timing, not scores
    gen_variants = {
        "one at a time": lambda: [generate_greedy(model, tok, [p], until=until, max_new_tokens=args.max_new_tokens)
                                  for p in gen_prompts],
        f"batched ({args.batch_size})": lambda: generate_greedy(model, tok, gen_prompts, until=until,
                                                               max_new_tokens=args.max_new_tokens,
                                                               batch_size=args.batch_size),
    }
    _compare(f"greedy generation: {len(gen_prompts)} {mgsm.name} prompts, up to {args.max_new_tokens} new tokens",
             gen_variants, len(gen_prompts), args.repeats)


if __name__ == "__main__":
    main()
