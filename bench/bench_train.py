"""Benchmark polyroute.train's parametrisation (one process, CPU or GPU; ratios from one run).

Gradient + AdamW state bytes and step time of three ways to train a ~2% expert budget on the same
model: (a) row deltas on the selected experts (polyroute.train), (b) masking whole fused expert
tensors (grads zeroed outside the selected rows), (c) full fine-tuning; and (a) again with
deterministic kernels (`training.deterministic`, the default), for what reproducibility costs.

    .venv/bin/python bench/bench_train.py [--experts 64 --layers 4 --hidden 256 --budget 0.02 --steps 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from polyroute.models import get_adapter
from polyroute.models.tiny import tiny_config, tiny_model
from polyroute.train import attach_deltas, build_plan
from polyroute.train.loop import deterministic_kernels


def state_bytes(params: list[torch.nn.Parameter], opt: torch.optim.Optimizer) -> tuple[int, int]:
    """(gradient bytes, optimizer state bytes) after a step."""
    grads = sum(p.grad.numel() * p.grad.element_size() for p in params if p.grad is not None)
    states = sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
                 if torch.is_tensor(t) and t.ndim > 0)
    return grads, states


def setup(kind: str, cfg, subnet: dict, seed: int):
    model = tiny_model(cfg, seed=seed).float().train()
    adapter = get_adapter(model)
    if kind in ("subnetwork", "deterministic"):
        attach_deltas(model, build_plan(model, adapter, subnet))
    elif kind == "masked":
        for p in model.parameters():
            p.requires_grad_(False)
        by_layer: dict[int, list[int]] = {}
        for layer, e in subnet["experts"]:
            by_layer.setdefault(layer, []).append(e)
        for layer, experts in by_layer.items():
            keep = torch.zeros(adapter.num_experts, dtype=torch.bool)
            keep[experts] = True
            for p in adapter.expert_parameters(model, layer).values():
                p.requires_grad_(True)
                shape = (-1,) + (1,) * (p.ndim - 1)
                p.register_hook(lambda g, m=keep.view(shape): g * m)  # only the selected rows learn
    params = [p for p in model.parameters() if p.requires_grad]
    return model, params, torch.optim.AdamW(params, lr=2e-5, weight_decay=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--moe-intermediate", type=int, default=128)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--budget", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = tiny_config("qwen3_moe", num_experts=args.experts, num_hidden_layers=args.layers, hidden_size=args.hidden,
                      moe_intermediate_size=args.moe_intermediate, num_experts_per_tok=args.top_k, vocab_size=1024,
                      head_dim=args.hidden // 4, intermediate_size=2 * args.hidden)
    total = args.experts * args.layers
    k = max(1, round(args.budget * total))
    g = torch.Generator().manual_seed(0)
    picks = torch.randperm(total, generator=g)[:k].tolist()
    subnet = {"experts": [[i // args.experts, i % args.experts] for i in picks]}
    x = torch.randint(4, 1024, (args.batch, args.seq), generator=g)
    print(f"model: {args.layers} MoE layers x {args.experts} experts, hidden {args.hidden}, "
          f"moe_intermediate {args.moe_intermediate}; budget {k}/{total} experts ({k / total:.1%}); "
          f"layers touched: {len({l for l, _ in subnet['experts']})}")
    # the three setups step in turn, so load from other processes hits them alike
    runs = {kind: setup(kind, cfg, subnet, seed=0) for kind in ("subnetwork", "deterministic", "masked", "full")}
    times: dict[str, list[float]] = {kind: [] for kind in runs}
    grads: dict[str, int] = {}
    for step in range(args.steps + 1):
        for kind, (model, params, opt) in runs.items():
            t0 = time.perf_counter()
            with deterministic_kernels(kind == "deterministic"):
                model(x, labels=x).loss.backward()
            if step == 0:
                grads[kind] = state_bytes(params, opt)[0]
            opt.step()
            opt.zero_grad(set_to_none=True)
            if step > 0:  # step 0 allocates the optimizer state
                times[kind].append(time.perf_counter() - t0)
    results = {kind: (sum(p.numel() for p in params), grads[kind], state_bytes(params, opt)[1],
                      statistics.median(times[kind])) for kind, (model, params, opt) in runs.items()}
    expert_bytes = sum(p.numel() * p.element_size() for layer in range(args.layers)
                       for p in get_adapter(runs["full"][0]).expert_parameters(runs["full"][0], layer).values())
    full = results["full"]
    print(f"{'setup':<14}{'trainable':>12}{'grad MB':>10}{'Adam MB':>10}{'state/full':>12}{'state/experts':>15}{'step s':>9}{'vs full':>9}")
    for kind, (n, grads, states, t) in results.items():
        print(f"{kind:<14}{n:>12,}{grads / 2**20:>10.2f}{states / 2**20:>10.2f}{(grads + states) / (full[1] + full[2]):>12.4f}"
              f"{(grads + states) / (3 * expert_bytes):>15.4f}{t:>9.3f}{t / full[3]:>9.2f}")
    ratio = results["deterministic"][3] / results["subnetwork"][3]
    print(f"deterministic kernels: {ratio:.2f}x the subnetwork step")
    print("state/experts = (grad + Adam state) / (3 x all expert weights), i.e. the fraction of what training "
          "every expert would hold")


if __name__ == "__main__":
    main()
