"""A GPU job's Slurm request from its work: GPUs and host memory from the model's size, runtime from
the job's tokens and decode steps at the throughput figures, with a margin and a floor.

The workflow's GPU rules call `rule_resources` (common.smk `gpu_resources`), so what `polyroute plan`
prints is what Slurm is asked for. A job whose data or model config is not on disk yet raises
FileNotFoundError on that input: Snakemake then sizes the job when it is ready to run.
"""

from __future__ import annotations

import errno
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from polyroute.config import ClusterConfig
from polyroute.sizing.jobs import Job, eval_languages, job_data_files, job_work
from polyroute.sizing.model import ModelSize, gpus_needed, host_memory_mb, model_size
from polyroute.sizing.throughput import Throughput, load_throughput
from polyroute.sizing.work import DataSource, Work

__all__ = ["cluster_settings", "gpu_seconds", "runtime_minutes", "job_gpus", "job_mem_mb",
           "Sizing", "rule_resources"]


def cluster_settings(cfg: Mapping[str, Any]) -> ClusterConfig:
    """The validated config's `cluster` block (defaults from the schema)."""
    return ClusterConfig(**cfg["cluster"])


def gpu_seconds(work: Work, throughput: Throughput) -> float | None:
    """GPU seconds of `work` (None while its tokens are unknown): its tokens at its path's rate, plus
    its decode steps at the per-step time of its batch size."""
    if work.tokens is None:
        return None
    return work.tokens / throughput.rate(work.path) + work.decode_steps * throughput.step_seconds(work.decode_batch)


def runtime_minutes(seconds: float, load_seconds: float, margin: float, floor: int, attempt: int = 1) -> int:
    """Slurm minutes: margin x (model loading + the work), at least `floor`; times the attempt, so a
    retry after a time-out asks for more."""
    if margin < 1:
        raise ValueError(f"cluster.runtime_margin must be >= 1, got {margin}")
    return max(int(floor), math.ceil(margin * (load_seconds + seconds) / 60)) * int(attempt)


def job_gpus(cfg: Mapping[str, Any], rule: str, size: ModelSize, cluster: ClusterConfig) -> int:
    """GPUs of one job: training uses `training.gpus` (one deepspeed process each); every other GPU rule
    as many as the weights need, the model spread over them by the loader's device map."""
    if rule == "train_subnetwork":
        return int(cfg["training"]["gpus"])
    return gpus_needed(size.weights_bytes, cluster.gpu_memory_gb, cluster.gpu_headroom)


def job_mem_mb(rule: str, size: ModelSize) -> int:
    return host_memory_mb(size.weights_bytes, training=rule == "train_subnetwork")


class Sizing:
    """Model size, throughput and data of one config, computed once and shared by its jobs."""

    def __init__(self, cfg: Mapping[str, Any], *, throughput: str | os.PathLike | None = None,
                 data: DataSource | None = None) -> None:
        self.cfg = cfg
        self.cluster = cluster_settings(cfg)
        self.size = model_size(cfg["model"])
        self.throughput = load_throughput(self.size, throughput or self.cluster.throughput)
        self.data = data or DataSource(cfg)
        self._work: dict[tuple, Work] = {}

    def work(self, job: Job) -> Work:
        key = (job.rule, tuple(sorted(job.wildcards.items())))
        if job.rule == "evaluate":  # variants of one task share their work
            key = ("evaluate", job.wildcards["task"], tuple(eval_languages(self.cfg, job.wildcards["variant"],
                                                                           job.wildcards["task"])))
        cached = self._work.get(key)
        if cached is None or cached.tokens is None or (not cached.exact and self.data.tokenizer is not None):
            self._work[key] = job_work(self.cfg, job, self.data)
        return self._work[key]

    def seconds(self, job: Job) -> float | None:
        """GPU seconds of the job; for extract_routing, of its largest shard: the shards go out as one
        Slurm array, whose one runtime must cover each."""
        if job.rule == "extract_routing":
            shards = [Job(job.rule, {**job.wildcards, "shard": str(s)})
                      for s in range(self.cfg["extraction"]["shards"])]
            seconds = [gpu_seconds(self.work(shard), self.throughput) for shard in shards]
            return None if None in seconds else max(seconds)
        return gpu_seconds(self.work(job), self.throughput)

    def runtime(self, job: Job, attempt: int = 1) -> int | None:
        seconds = self.seconds(job)
        if seconds is None:
            return None
        return runtime_minutes(seconds, self.throughput.load_seconds(self.size.weights_bytes),
                               self.cluster.runtime_margin, self.cluster.runtime_floor, attempt)

    def gpus(self, rule: str) -> int:
        return job_gpus(self.cfg, rule, self.size, self.cluster)

    def mem_mb(self, rule: str) -> int:
        return job_mem_mb(rule, self.size)


_SIZINGS: dict[int, Sizing] = {}


def _sizing(cfg: Mapping[str, Any], model_info: str) -> Sizing:
    """One Sizing per config object in this process (Snakemake evaluates every job's resources)."""
    if id(cfg) not in _SIZINGS:
        try:
            _SIZINGS[id(cfg)] = Sizing(cfg)
        except FileNotFoundError as e:  # the model's config comes with model_info: size the job after it
            raise FileNotFoundError(errno.ENOENT, str(e), model_info) from e
    return _SIZINGS[id(cfg)]


def rule_resources(cfg: Mapping[str, Any], rule: str, model_info: str, weights: str) -> dict[str, Callable[..., int]]:
    """`gpu`, `mem_mb` and `runtime` of a GPU rule as Snakemake resource functions. `model_info` and
    `weights` are the rule's inputs written by model_info and download_model; a missing data file, model
    config or download (whose tokenizer counts the tokens) defers the job's sizing to when it is ready
    (Snakemake re-evaluates resources that raised FileNotFoundError on an input)."""

    def gpu(wildcards: Any, input: Any) -> int:  # noqa: A002 - Snakemake's argument name
        return _sizing(cfg, model_info).gpus(rule)

    def mem_mb(wildcards: Any, input: Any) -> int:  # noqa: A002
        return _sizing(cfg, model_info).mem_mb(rule)

    def runtime(wildcards: Any, input: Any, attempt: int) -> int:  # noqa: A002
        job = Job(rule, {key: str(value) for key, value in wildcards.items()})
        for path in [*job_data_files(cfg, job), weights]:
            if not os.path.exists(path):
                raise FileNotFoundError(errno.ENOENT, "not downloaded yet", path)
        minutes = _sizing(cfg, model_info).runtime(job, attempt)
        if minutes is None:  # cannot happen once the data files exist; kept as a loud guard
            raise ValueError(f"{rule} {job.label()}: work unknown although its data exist")
        return minutes

    return {"gpu": gpu, "mem_mb": mem_mb, "runtime": runtime}
