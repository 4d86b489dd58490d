"""Where a decode step's time goes on a GPU: kernels, launches, host-device synchronisation.

Builds a family at its published shape on CUDA (random bf16 weights, `polyroute.models.shapes`) and runs
`generate_greedy` twice per setting, the second under `torch.profiler`: "before" (dynamic cache, a stop
check every step) and "now" (static cache with the compiled decode step, a check every 8 steps). Per
decode step it prints the wall time, the GPU's busy time (sum of kernel times), the number of kernel
launches and the host time spent launching, and the host time spent waiting on the device
(synchronize calls, blocking copies to the host). A step whose wall time is far above its kernel time is
launch- or sync-bound: what CUDA graphs and deferred stop checks remove. One short call on any GPU:

    python bench/profile_generation.py [--model Qwen3-30B-A3B] [--batch 128] [--prompt 512] [--new 32] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from polyroute.evaluate.generation import generate_greedy
from polyroute.models.shapes import proxy_config, published_config, random_model

from bench_realshape import never_stopping  # noqa: E402 - a sibling script (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "resources" / "models" / "polyroute-demo-qwen3moe"
FLORES = ROOT / "resources" / "demo" / "flores_plus"

SETTINGS = {"before": dict(static_cache=False, stop_check_every=1), "now": {}}
_LAUNCH = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx", "cudaGraphLaunch")
_SYNC = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy", "cudaMemcpyAsync")


def _split(prof, steps: int) -> dict[str, float]:
    """Per decode step: kernel ms (device), launches and their host ms, host ms waiting on the device."""
    kernel_us = launch_us = sync_us = 0.0
    launches = 0
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernel_us += event.device_time
        elif event.name in _LAUNCH:
            launches += 1
            launch_us += event.cpu_time
        elif event.name in _SYNC:
            sync_us += event.cpu_time
    return {"kernel_ms": kernel_us / 1e3 / steps, "launches": launches / steps, "launch_ms": launch_us / 1e3 / steps,
            "sync_ms": sync_us / 1e3 / steps}


def main() -> None:
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="Qwen3-30B-A3B")
    parser.add_argument("--hidden", type=int, default=None, help="a proxy width (smoke runs); default the real shape")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=512, help="prompt tokens (about)")
    parser.add_argument("--new", type=int, default=32, help="new tokens per run")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    config = published_config(args.model) if args.hidden is None else proxy_config(args.model, args.hidden)
    model, tok = never_stopping(random_model(config, args.device), AutoTokenizer.from_pretrained(TOKENIZER))
    texts = [json.loads(line)["text"] for p in sorted(FLORES.glob("*/*.jsonl")) for line in open(p, encoding="utf-8")]
    prompts = []
    for i in range(args.batch):
        words, j = [], 0
        while len(tok.encode(" ".join(words))) < args.prompt:
            words.append(texts[(i * 13 + j) % len(texts)])
            j += 1
        prompts.append(" ".join(words))
    never = ["\x00never\x00"]
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    report = {"model": args.model, "batch": args.batch, "prompt": args.prompt, "new": args.new}
    for name, setting in SETTINGS.items():
        run = lambda: generate_greedy(model, tok, prompts, until=never, max_new_tokens=args.new,  # noqa: E731
                                      batch_size=args.batch, **setting)
        run()  # warm-up: compilation and CUDA graph capture happen here
        sync()
        start = time.perf_counter()
        run()
        sync()
        wall = time.perf_counter() - start
        with profile(activities=activities) as prof:
            run()
            sync()
        split = _split(prof, args.new)
        report[name] = {"wall_s": wall, "steps_per_s": args.new / wall, "step_ms": 1e3 * wall / args.new, **split}
        print(f"{name}: {args.new / wall:.1f} steps/s ({1e3 * wall / args.new:.1f} ms a step, prefill included); per step "
              f"kernels {split['kernel_ms']:.1f} ms, {split['launches']:.0f} launches ({split['launch_ms']:.1f} ms host), "
              f"waiting on the device {split['sync_ms']:.1f} ms", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
