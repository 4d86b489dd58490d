"""Evaluation and extraction at a real model's shape, each path against the plain forward of the same run.

Builds a supported family at its published dimensions (`polyroute.models.shapes`, random weights made
on the target device) and times, on the same inputs, in one process, variants interleaved, best of
`--repeats`:

- scoring (Belebele-like items: 4 choices after a shared context): the plain decoder forward over the
  same padded batches (the baseline), the full causal-LM forward (every position through the head),
  the scoring before this change (float32 log-softmax over the vocabulary at every position, copied to
  the host: `_loglikelihoods_before`), and `loglikelihoods` as it is now;
- generation: `generate_greedy` as before (dynamic cache, a stop check every step) and as it is now
  (static cache and compiled decode on CUDA, a check every 8 steps), against a bare
  forward-with-cache + argmax loop of the same batch and length (the baseline);
- extraction: the plain decoder forward over the same batches (the baseline), `extract_shard` (in
  memory) and `extract_to_store` (what `extract_routing` runs), per-token output on.

Each table gives wall-clock and process CPU time (all threads); ratios lead with wall time on CUDA and
CPU time on a CPU (a shared machine's load inflates it far less than wall time). CPU time also charges
what runs beside the forward passes (the background store writer, zarr's I/O threads, OpenMP workers
spinning while the main thread writes), which a GPU run hides behind the device's work; so on a CPU
the extraction ratios are a lower bound of a GPU's.

On CPU the default is a proxy: real depth, experts, top-k and vocabulary at `--hidden` width, which
shows per-layer, per-step and per-vocabulary costs; on CUDA the real shape in bf16.

    .venv/bin/python bench/bench_realshape.py [--model Qwen3-30B-A3B] [--device cpu|cuda] [--hidden 128]
        [--paths scoring,generation,extraction] [--repeats 3] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from polyroute.evaluate.generation import generate_greedy
from polyroute.evaluate.scoring import Encoded, encode_pair, loglikelihoods
from polyroute.models import get_adapter
from polyroute.models.shapes import proxy_config, published_config, random_model
from polyroute.routing.stream import extract_shard, extract_to_store

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "resources" / "models" / "polyroute-demo-qwen3moe"
FLORES = ROOT / "resources" / "demo" / "flores_plus"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best(fn, device: str) -> tuple[float, float]:
    """(wall seconds, process CPU seconds of all threads) of one call."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def _interleaved(variants: dict, repeats: int, device: str) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) of `repeats` interleaved calls per variant."""
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_best(fn, device))
    return {name: (min(w for w, _ in t), min(c for _, c in t)) for name, t in times.items()}


def _texts() -> list[str]:
    return [json.loads(line)["text"] for path in sorted(FLORES.glob("*/*.jsonl")) for line in open(path, encoding="utf-8")]


def _loglikelihoods_before(model, encoded: list[Encoded], batch_size: int) -> list[float]:
    """The scoring path before this change, kept as the measured baseline: every position's float32
    log-softmax over the vocabulary, copied to the host, read at the continuation."""
    device = next(model.parameters()).device
    inputs = sorted({(e.context + e.continuation)[:-1] for e in encoded}, key=lambda inp: -len(inp))
    out = []
    with torch.inference_mode():
        for start in range(0, len(inputs), batch_size):
            batch = inputs[start:start + batch_size]
            ids = torch.zeros((len(batch), len(batch[0])), dtype=torch.long)
            for row, inp in enumerate(batch):
                ids[row, :len(inp)] = torch.tensor(inp)
            logprobs = torch.log_softmax(model(ids.to(device)).logits.float(), dim=-1).cpu()
            out.append(float(logprobs[:, -1].max()))
    return out


def _plain_decoder(model, batches: list[torch.Tensor], device: str) -> None:
    decoder = model.get_decoder()
    with torch.inference_mode():
        for ids in batches:
            decoder(input_ids=ids.to(device), use_cache=False)


def _full_forward(model, batches: list[torch.Tensor], device: str) -> None:
    with torch.inference_mode():
        for ids in batches:
            model(input_ids=ids.to(device), use_cache=False)


def _padded_batches(inputs: list[tuple[int, ...]], batch_size: int) -> list[torch.Tensor]:
    inputs = sorted(inputs, key=lambda inp: -len(inp))
    batches = []
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start:start + batch_size]
        ids = torch.zeros((len(batch), len(batch[0])), dtype=torch.long)
        for row, inp in enumerate(batch):
            ids[row, :len(inp)] = torch.tensor(inp)
        batches.append(ids)
    return batches


def bench_scoring(model, tok, texts, args) -> dict:
    requests = []
    for i in range(args.items):
        context = " ".join(texts[(i * 7 + j) % len(texts)] for j in range(args.context_sentences))
        requests += [encode_pair(tok, context + "\nAnswer:", choice) for choice in (" A", " B", " C", " D")]
    inputs = list({(e.context + e.continuation)[:-1] for e in requests})
    batches = _padded_batches(inputs, args.batch_size)
    tokens = sum(len(inp) for inp in inputs)
    variants = {
        "plain decoder forward": lambda: _plain_decoder(model, batches, args.device),
        "full causal-LM forward": lambda: _full_forward(model, batches, args.device),
        "loglikelihoods before": lambda: _loglikelihoods_before(model, requests, args.batch_size),
        "loglikelihoods now": lambda: loglikelihoods(model, requests, batch_size=args.batch_size, max_length=4096),
    }
    loglikelihoods(model, requests[:4], batch_size=1, max_length=4096)  # warm-up, and the one-time head check
    times = _interleaved(variants, args.repeats, args.device)
    return _report("scoring", times, tokens, "tok/s", extra={"items": args.items, "inputs": len(inputs)},
                   cpu_first=args.device == "cpu")


def _bare_decode(model, ids: torch.Tensor, mask: torch.Tensor, steps: int) -> None:
    """Forward with the cache and argmax, no stopping and no generation machinery: the decode floor."""
    from transformers import DynamicCache

    with torch.inference_mode():
        cache = DynamicCache(config=model.config)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                    use_cache=True, logits_to_keep=1)
        for _ in range(steps - 1):
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            positions = positions[:, -1:] + 1
            out = model(input_ids=token, attention_mask=mask, position_ids=positions, past_key_values=cache,
                        use_cache=True, logits_to_keep=1)


class NoEos:
    """The tokenizer without an EOS token: a random model's greedy output often is EOS, which would end
    generation after a step or two and time nothing; so every variant decodes the same number of steps."""

    eos_token_id = None
    eos_token = None

    def __init__(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def __getattr__(self, name: str):
        return getattr(self._tokenizer, name)


def never_stopping(model, tok):
    """(model, tokenizer) whose generation ends only at max_new_tokens."""
    model.generation_config.eos_token_id = None
    return model, NoEos(tok)


def bench_generation(model, tok, texts, args) -> dict:
    model, tok = never_stopping(model, tok)
    prompts = [" ".join(texts[(i * 13 + j) % len(texts)] for j in range(args.context_sentences))
               for i in range(args.gen_batch)]
    encoded = [tok.encode(p) for p in prompts]
    width = max(len(e) for e in encoded)
    ids = torch.zeros((len(encoded), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, width - len(e):] = torch.tensor(e)
        mask[row, width - len(e):] = 1
    ids, mask = ids.to(args.device), mask.to(args.device)
    never = ["\x00never\x00"]  # no row stops early: every variant decodes the same number of steps
    steps = args.new_tokens
    variants = {
        "bare forward-with-cache + argmax": lambda: _bare_decode(model, ids, mask, steps),
        "generate_greedy before": lambda: generate_greedy(model, tok, prompts, until=never, max_new_tokens=steps,
                                                          batch_size=len(prompts), static_cache=False,
                                                          stop_check_every=1),
        "generate_greedy now": lambda: generate_greedy(model, tok, prompts, until=never, max_new_tokens=steps,
                                                       batch_size=len(prompts)),
    }
    if not args.device.startswith("cuda"):  # the GPU's settings on this device, without the compiled step
        variants["generate_greedy, static cache + check every 8"] = lambda: generate_greedy(
            model, tok, prompts, until=never, max_new_tokens=steps, batch_size=len(prompts), static_cache=True,
            stop_check_every=8)
    variants["generate_greedy now"]()  # warm-up: compiles the decode step on CUDA
    times = _interleaved(variants, args.repeats, args.device)
    return _report("generation", times, steps, "steps/s",
                   extra={"batch": len(prompts), "prompt_tokens": width, "new_tokens": steps},
                   cpu_first=args.device == "cpu")


def bench_extraction(model, tok, texts, args) -> dict:
    adapter = get_adapter(model)
    texts = [texts[i % len(texts)] for i in range(args.sequences)]
    langs = ["xx"] * len(texts)
    ids_ = [f"s{i}" for i in range(len(texts))]
    options = dict(languages=["xx"], batch_tokens=args.batch_tokens, max_length=512, per_token=True)
    encoded = tok(texts, truncation=True, max_length=512)["input_ids"]
    tokens = sum(len(e) for e in encoded)
    batches = []
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    start = 0
    while start < len(order):
        width = len(encoded[order[start]])
        rows = max(1, args.batch_tokens // width)
        batch = [encoded[i] for i in order[start:start + rows]]
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            ids[row, :len(e)] = torch.tensor(e)
        batches.append(ids)
        start += rows
    out_dir = Path(tempfile.mkdtemp(prefix="bench_realshape_"))
    counter = iter(range(10**6))
    variants = {
        "plain decoder forward": lambda: _plain_decoder(model, batches, args.device),
        "extract_shard (in memory)": lambda: extract_shard(model, tok, adapter, texts, langs, ids_, ids_, **options),
        "extract_to_store": lambda: extract_to_store(model, tok, adapter, texts, langs, ids_, ids_,
                                                     out_dir / f"{next(counter)}.zarr", {"model": "bench"}, **options),
    }
    busy = _writer_busy_time()
    times = _interleaved(variants, args.repeats, args.device)
    busy_s = min(busy) if busy else float("nan")
    print(f"store writes in the background thread: {busy_s:.3f} s of CPU per shard (best run), "
          f"{busy_s / times['plain decoder forward'][1]:.1%} of the plain forward's CPU time")
    return _report("extraction", times, tokens, "tok/s",
                   extra={"sequences": len(texts), "tokens": tokens, "writer_cpu_s": round(busy_s, 3)},
                   pairs=[("extract_to_store", "extract_shard (in memory)")], cpu_first=args.device == "cpu")


def _writer_busy_time() -> list[float]:
    """Records each store writer thread's busy CPU seconds (`BackgroundWork.busy_s`) as it closes."""
    from polyroute.routing import background

    seen: list[float] = []
    close = background.BackgroundWork.close

    def recording_close(self) -> None:
        close(self)
        seen.append(self.busy_s)

    background.BackgroundWork.close = recording_close
    return seen


def _report(title: str, times: dict[str, tuple[float, float]], work: float, unit: str, extra: dict,
            pairs: list[tuple[str, str]] = (), cpu_first: bool = True) -> dict:
    """A table per path: rates and ratios against the first variant, by CPU time (CPU runs) or wall time."""
    baseline = next(iter(times))
    main = 1 if cpu_first else 0
    label, other = ("CPU", "wall") if cpu_first else ("wall", "CPU")
    print(f"\n## {title} ({', '.join(f'{k} {v}' for k, v in extra.items())})", flush=True)
    print(f"| variant | {label} time | {unit} | vs {baseline} | {other} time | {other} ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {t[main]:.3f} s | {work / t[main]:,.1f} | {times[baseline][main] / t[main]:.3f}x "
              f"| {t[1 - main]:.3f} s | {times[baseline][1 - main] / t[1 - main]:.3f}x |")
    for a, b in pairs:
        print(f"{a} / {b}: {times[b][main] / times[a][main]:.3f}x the rate ({label}), "
              f"{times[b][1 - main] / times[a][1 - main]:.3f}x ({other})", flush=True)
    return {"wall_s": {k: v[0] for k, v in times.items()}, "cpu_s": {k: v[1] for k, v in times.items()},
            "work": work, "unit": unit, **extra}


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="Qwen3-30B-A3B", help="a name in polyroute.models.shapes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--hidden", type=int, default=None,
                        help="proxy width (default: 128 on CPU, the real width on CUDA)")
    parser.add_argument("--paths", default="scoring,generation,extraction")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--items", type=int, default=16, help="Belebele-like items (4 choices each)")
    parser.add_argument("--context-sentences", type=int, default=6, help="FLORES sentences per context/prompt")
    parser.add_argument("--batch-size", type=int, default=16, help="scoring batch (distinct inputs)")
    parser.add_argument("--gen-batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--sequences", type=int, default=256, help="extraction sequences")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="extraction batch budget")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()

    hidden = args.hidden or (None if args.device.startswith("cuda") else 128)
    config = published_config(args.model) if hidden is None else proxy_config(args.model, hidden)
    start = time.perf_counter()
    model = random_model(config, args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"# {args.model} {'published shape' if hidden is None else f'proxy at hidden {hidden}'}: "
          f"{config.num_hidden_layers} layers, vocabulary {config.vocab_size:,}, {n_params / 1e6:,.0f}M parameters, "
          f"{model.dtype}, {args.device}, threads {torch.get_num_threads()} (built in {time.perf_counter() - start:.0f} s)")
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    texts = _texts()
    results = {"model": args.model, "hidden": config.hidden_size, "device": args.device, "params": n_params}
    for path in args.paths.split(","):
        results[path] = {"scoring": bench_scoring, "generation": bench_generation,
                         "extraction": bench_extraction}[path](model, tok, texts, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
