"""The `polyroute plan` and `polyroute calibrate` command lines (registered in `polyroute.cli.COMMANDS`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

Handler = Callable[[argparse.Namespace], int]


def _configfiles(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configfile", action="append", default=[], metavar="FILE",
                   help="config merged over config.yaml, as snakemake --configfile (repeatable; none = the demo)")


def plan_args(p: argparse.ArgumentParser) -> Handler:
    _configfiles(p)
    p.add_argument("--throughput", metavar="JSON", help="figures from `polyroute calibrate` (default: "
                   "cluster.throughput, else the built-in reference figures)")

    def run(args: argparse.Namespace) -> int:
        from polyroute.sizing.plan import format_plan, load_run_config, make_plan

        cfg = load_run_config(args.configfile)
        print("\n".join(format_plan(make_plan(cfg, args.throughput), " ".join(args.configfile))))
        return 0

    return run


def calibrate_args(p: argparse.ArgumentParser) -> Handler:
    _configfiles(p)
    p.add_argument("--out", required=True, metavar="JSON", help="where to write the throughput figures")
    p.add_argument("--sequences", type=int, default=256, help="texts timed per path (default 256)")
    p.add_argument("--new-tokens", type=int, default=32, help="decode steps of the timed generation (default 32)")
    p.add_argument("--device", default="auto", help="auto (the GPUs if any), cpu, cuda:0, ...")

    def run(args: argparse.Namespace) -> int:
        from polyroute.sizing.calibrate import calibrate
        from polyroute.sizing.plan import load_run_config

        table = calibrate(load_run_config(args.configfile), args.out, sequences=args.sequences,
                          new_tokens=args.new_tokens, device=args.device)
        steps = ", ".join(f"{rate:.2f} steps/s at batch {b}" for b, rate in table["generate_steps_per_s"].items())
        print(f"{table['gpu']}: forward {table['forward_tokens_per_s']:,.0f} tok/s, extraction "
              f"{table['extract_tokens_per_s']:,.0f} tok/s, scoring {table['score_tokens_per_s']:,.0f} tok/s, "
              f"generation {steps} -> {args.out}")
        return 0

    return run
