"""Benchmark routing interventions: an active intervention vs none, in one run (aim <= 1.05x).

One process; the variants are interleaved (shared machines are noisy) and each keeps its median and best
of the repeats. Every MoE layer is edited (the worst case; the papers edit a window), 8 experts each.
Also times the router alone with and without the edit, the part of the forward an intervention touches.

    .venv/bin/python bench/bench_interventions.py [--tokens 16384] [--device cpu|cuda] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from bench_capture import bench_config, timed  # the same model as the capture benchmark
from polyroute.interventions import intervene
from polyroute.models import get_adapter
from polyroute.models.tiny import tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-tokens", type=int, default=4096)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--experts", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    model = tiny_model(bench_config(args)).to(args.device, getattr(torch, args.dtype))
    adapter = get_adapter(model)
    gen = torch.Generator().manual_seed(0)
    rows = args.batch_tokens // args.seq_len
    batches = [torch.randint(4, 100, (rows, args.seq_len), generator=gen).to(args.device)
               for _ in range(max(1, args.tokens // args.batch_tokens))]
    experts = [(layer, e) for layer in adapter.moe_layers for e in range(0, args.experts, args.experts // 8)][: 8 * len(adapter.moe_layers)]
    scores = [0.5] * len(experts)
    mask = [(layer, e) for layer, e in experts]
    hard = [(layer, e) for layer, e in experts if e < args.experts // 8 * 2]  # 2 per layer: k can honour them
    variants = {
        "none": None,
        "soft": lambda: intervene(model, "soft", experts, 0.5),
        "affinity": lambda: intervene(model, "affinity", experts, 0.022, scores),
        "hard": lambda: intervene(model, "hard", hard),
        "mask": lambda: intervene(model, "mask", mask),
    }

    def forward() -> None:
        for ids in batches:
            model.model(input_ids=ids, use_cache=False)

    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        forward()  # warm-up
        for _ in range(args.repeats):
            for name, make in variants.items():
                if make is None:
                    times[name].append(timed(forward, args.device))
                else:
                    with make():
                        times[name].append(timed(forward, args.device))

        router = adapter.router(model, adapter.moe_layers[0])
        hidden = torch.randn(args.batch_tokens, args.hidden, generator=gen).to(args.device, getattr(torch, args.dtype))
        calls = 50

        def route() -> None:
            for _ in range(calls):
                router(hidden)

        router_times = {"none": [], "soft": []}
        for _ in range(args.repeats):
            router_times["none"].append(timed(route, args.device))
            with intervene(model, "soft", experts, 0.5):
                router_times["soft"].append(timed(route, args.device))

    n_tokens = sum(ids.numel() for ids in batches)
    print(f"model qwen3_moe hidden {args.hidden}, E={args.experts}, k={args.top_k}, {args.layers} MoE layers, "
          f"{args.dtype} on {args.device}; {n_tokens} tokens in batches of {rows} x {args.seq_len}; "
          f"{len(experts) // len(adapter.moe_layers)} experts edited in every MoE layer (hard: 2); "
          f"{args.repeats} interleaved repeats, threads {torch.get_num_threads()}")
    base_med, base_min = statistics.median(times["none"]), min(times["none"])
    print("| variant | median | best | median vs none | best vs none |")
    print("|---|---:|---:|---:|---:|")
    for name, values in times.items():
        med, best = statistics.median(values), min(values)
        print(f"| {name} | {med:.3f} s | {best:.3f} s | {med / base_med:.3f}x | {best / base_min:.3f}x |")
    r0, r1 = statistics.median(router_times["none"]), statistics.median(router_times["soft"])
    print(f"router alone ({args.batch_tokens} tokens, {calls} calls): none {r0 / calls * 1e3:.3f} ms, "
          f"soft {r1 / calls * 1e3:.3f} ms per call ({r1 / r0:.2f}x); "
          f"edit + re-route = {(r1 - r0) / calls * len(adapter.moe_layers) * len(batches) / base_med * 100:.2f} % "
          f"of a plain forward")


if __name__ == "__main__":
    main()
