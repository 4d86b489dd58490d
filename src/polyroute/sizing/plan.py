"""`polyroute plan`: per rule, the jobs, their work, GPU-hours, and what each job asks Slurm for.

Offline: no GPU, no download. The figures are those the rules request (`polyroute.sizing.resources`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from polyroute.sizing.jobs import GPU_RULES, Job, gpu_jobs
from polyroute.sizing.resources import Sizing, gpu_seconds

__all__ = ["RulePlan", "Plan", "load_run_config", "make_plan", "format_plan"]

DEFAULT_CONFIG = "config.yaml"


@dataclass(frozen=True)
class RulePlan:
    rule: str
    jobs: int
    gpus: int  # per job
    mem_mb: int  # per job
    items: int  # of the jobs whose items are known
    items_complete: bool
    tokens: int | None  # None: some unknown until download_dataset ran
    tokens_exact: bool
    gpu_hours: float  # of the jobs whose work is known, times their GPUs (plus known decode steps)
    complete: bool  # every job's work known
    runtime: int | None  # the longest job's Slurm minutes (None: set when its data exist)


@dataclass(frozen=True)
class Plan:
    run: str
    sizing: Sizing
    rules: list[RulePlan]

    @property
    def gpu_hours(self) -> float:
        return sum(r.gpu_hours for r in self.rules)

    @property
    def complete(self) -> bool:
        return all(r.complete for r in self.rules)


def load_run_config(configfiles: Sequence[str | os.PathLike], base: str | os.PathLike = DEFAULT_CONFIG) -> dict:
    """The validated config Snakemake would run: config.yaml with each --configfile merged over it."""
    from snakemake.utils import update_config

    from polyroute.config import validate

    raw: dict[str, Any] = {}
    for path in [base, *configfiles]:
        if not Path(path).is_file():
            raise ValueError(f"no config file {path}")
        update_config(raw, yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    return validate(raw)


def _rule_plan(sizing: Sizing, rule: str, jobs: list[Job]) -> RulePlan:
    works = [sizing.work(job) for job in jobs]
    gpus = sizing.gpus(rule)
    seconds = [gpu_seconds(w, sizing.throughput) for w in works]
    known = [s if s is not None else w.decode_steps * sizing.throughput.step_seconds(w.decode_batch)
             for s, w in zip(seconds, works)]
    items = [w.items for w in works]
    tokens = [w.tokens for w in works]
    runtimes = [sizing.runtime(job) for job in jobs]
    return RulePlan(
        rule=rule, jobs=len(jobs), gpus=gpus, mem_mb=sizing.mem_mb(rule),
        items=sum(n for n in items if n is not None), items_complete=None not in items,
        tokens=None if None in tokens else sum(tokens),
        tokens_exact=all(w.exact for w in works), gpu_hours=sum(known) * gpus / 3600,
        complete=None not in seconds, runtime=None if None in runtimes else max(runtimes),
    )


def make_plan(cfg: Mapping[str, Any], throughput: str | os.PathLike | None = None) -> Plan:
    sizing = Sizing(cfg, throughput=throughput)
    jobs = gpu_jobs(cfg)
    rules = [_rule_plan(sizing, rule, [j for j in jobs if j.rule == rule]) for rule in GPU_RULES
             if any(j.rule == rule for j in jobs)]
    return Plan(str(cfg["run"]), sizing, rules)


def _count(value: int | None, prefix: str = "") -> str:
    return "unknown" if value is None else f"{prefix}{value:,}"


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"


def _hours(r: RulePlan) -> str:
    prefix = ">= " if not r.complete else "" if r.tokens_exact else "<= "
    return f"{prefix}{r.gpu_hours:.2f}" if r.gpu_hours >= 0.01 or not r.gpu_hours else f"{prefix}{r.gpu_hours:.1e}"


def _cards(plan: Plan) -> list[str]:
    sizing, cluster = plan.sizing, plan.sizing.cluster
    size, cfg = sizing.size, sizing.cfg
    gpus = sizing.gpus("evaluate")
    usable = cluster.gpu_memory_gb * (1 - cluster.gpu_headroom)
    lines = [f"cards: {gpus} x {cluster.gpu_memory_gb:g} GB GPU per extraction and evaluation job "
             f"({size.weights_bytes / 1e9:.1f} GB of weights over {usable:g} GB usable a card: "
             f"cluster.gpu_memory_gb less {cluster.gpu_headroom:.0%} cluster.gpu_headroom)"
             + ("; the loader spreads the model over them (device_map=auto)" if gpus > 1 else "")]
    training = cfg["training"]
    if training["methods"]:
        lines.append(f"training: {training['gpus']} GPU(s) per job (training.gpus), "
                     f"ZeRO stage {training['zero_stage']}")
        if gpus > 1 and (training["zero_stage"] < 3 or training["gpus"] < gpus):
            lines.append(f"WARNING: the weights need {gpus} cards: set training.gpus >= {gpus} with zero_stage 3")
    if gpus > 1 and cfg["stats"]["noise_floor"]:
        lines.append(f"WARNING: untrained_routing builds its model on one card, which the weights do not fit")
    return lines


def format_plan(plan: Plan, configfile: str = "") -> list[str]:
    """The plan as printable lines."""
    sizing = plan.sizing
    size, tp = sizing.size, sizing.throughput
    lines = [f"run {plan.run}{f' ({configfile})' if configfile else ''}",
             f"model: {size.name}: {_params(size.total_params)} parameters, {_params(size.active_params)} "
             f"active per token, {size.bytes_per_param} bytes each: {size.weights_bytes / 1e9:.1f} GB of weights"]
    lines += _cards(plan)
    lines.append(f"throughput: {tp.source}")
    if tp.scaled_from:
        lines.append(f"  measured on {tp.scaled_from}, scaled to this model by active parameters per token "
                     f"(token rates) and by total parameters (decode steps)")
    rates = ", ".join(f"{path} {rate:,.0f} tok/s" for path, rate in tp.tokens_per_s.items())
    steps = ", ".join(f"{tp.steps_per_s[b]:.2f} steps/s at batch {b}" for b in sorted(tp.steps_per_s))
    lines.append(f"  {rates}; generate {steps}")
    rows = [["rule", "jobs", "GPUs/job", "mem/job", "items", "tokens", "GPU-hours", "runtime/job"]]
    for r in plan.rules:
        rows.append([r.rule, str(r.jobs), str(r.gpus), f"{r.mem_mb / 1000:.0f} GB",
                     _count(r.items, "" if r.items_complete else ">= "),
                     _count(r.tokens, "" if r.tokens_exact else "<= "), _hours(r),
                     f"{r.runtime} min" if r.runtime is not None else "when its data exist"])
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(row, widths)))
              for row in rows]
    exact = plan.complete and all(r.tokens_exact for r in plan.rules)
    lines.append(f"total: {plan.gpu_hours:.2f} GPU-hours" + ("" if exact else ", bounds included as they are"))
    if not plan.complete:
        lines.append("'>=': tokens unknown until download_dataset ran; counted: generation's decode steps only")
    if any(not r.tokens_exact for r in plan.rules):
        lines.append("'<=': an upper bound: without the data, max_length tokens a sequence; without the model's "
                     "tokenizer, UTF-8 bytes + 2 a sequence")
    lines.append(f"runtime/job: {sizing.cluster.runtime_margin:g} x (model loading + work), at least "
                 f"{sizing.cluster.runtime_floor} min (cluster.runtime_margin, cluster.runtime_floor); "
                 f"generation counts max_new_tokens decode steps per batch")
    return lines
