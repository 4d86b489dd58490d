"""The GPU jobs a configuration runs and the work of each, as the workflow's rules define them.

The job list follows workflow/rules/*.smk (a test checks it against Snakemake's own dry run on the demo
configuration): one `extract_routing` job per shard, one `untrained_routing` per noise-floor seed,
`task_routing` when an experiment needs task experts, one `intervention_routing` per experiment, one
`train_subnetwork` per (method, target), one `evaluate` per (variant, task) with languages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from polyroute.config import evaluation_languages
from polyroute.sizing.work import DataSource, Work, eval_work, routing_work, train_work

__all__ = ["GPU_RULES", "Job", "gpu_jobs", "job_work", "job_data_files"]

GPU_RULES = ("extract_routing", "untrained_routing", "task_routing", "intervention_routing", "train_subnetwork",
             "evaluate")


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: Mapping[str, str] = field(default_factory=dict)

    def label(self) -> str:
        return "/".join(str(v) for v in self.wildcards.values())


def _variant_languages(cfg: Mapping[str, Any]) -> dict[str, tuple[list[str] | None, list[str] | None]]:
    """variant -> (the tasks it is evaluated on, None = all; the languages it narrows to, None = all)."""
    from polyroute.interventions.experiments import experiments, variants

    evaluation = cfg["evaluation"]
    out: dict[str, tuple[list[str] | None, list[str] | None]] = {"base": (None, None)}
    if evaluation["adapters"]:
        out |= {f"{method}-{target}": (None, None) for method in cfg["training"]["methods"]
                for target in cfg["selection"]["targets"]}
    known = experiments(cfg)
    for name, variant in variants(cfg).items():
        out[name] = (cfg["interventions"]["tasks"], known[variant.experiment].languages)
    return out


def eval_languages(cfg: Mapping[str, Any], variant: str, task: str) -> list[str]:
    """The languages of one evaluate job (as common.smk's eval_languages_for)."""
    _, narrow = _variant_languages(cfg)[variant]
    languages = evaluation_languages(task, cfg["evaluation"]["tasks"][task], cfg["languages"],
                                     cfg["datasets"]["local"])
    return [code for code in languages if narrow is None or code in narrow]


def gpu_jobs(cfg: Mapping[str, Any]) -> list[Job]:
    """Every GPU job of a full run of the validated config `cfg`, in rule order."""
    from polyroute.interventions.experiments import experiments

    routing = cfg["datasets"]["routing"]["name"]
    jobs = [Job("extract_routing", {"dataset": routing, "shard": str(s)}) for s in range(cfg["extraction"]["shards"])]
    noise = cfg["stats"]["noise_floor"]
    if noise:
        jobs += [Job("untrained_routing", {"dataset": routing, "seed": str(seed)}) for seed in noise["seeds"]]
    every = experiments(cfg)
    if cfg["interventions"].get("task_data"):
        jobs.append(Job("task_routing"))
    jobs += [Job("intervention_routing", {"intervention": name}) for name in every]
    jobs += [Job("train_subnetwork", {"method": method, "target": target}) for method in cfg["training"]["methods"]
             for target in cfg["selection"]["targets"]]
    for variant, (tasks, _) in _variant_languages(cfg).items():
        for task in cfg["evaluation"]["tasks"]:
            if (tasks is None or task in tasks) and eval_languages(cfg, variant, task):
                jobs.append(Job("evaluate", {"variant": variant, "task": task}))
    return jobs


def job_data_files(cfg: Mapping[str, Any], job: Job, data_dir: str = "resources/data") -> list[str]:
    """The data files (resources/data/<dataset>/<language>.parquet) a job reads, as its rule names them."""
    def files(dataset: str, languages: list[str]) -> list[str]:
        return [f"{data_dir}/{dataset}/{language}.parquet" for language in languages]

    datasets = cfg["datasets"]
    if job.rule in ("extract_routing", "untrained_routing", "intervention_routing"):
        return files(datasets["routing"]["name"], cfg["languages"])
    if job.rule == "task_routing":
        return files(cfg["interventions"]["task_data"]["name"], [cfg["reference_language"]])
    if job.rule == "train_subnetwork":
        return files(datasets["training"]["name"], [job.wildcards["target"]])
    if job.rule == "evaluate":
        from polyroute.evaluate.tasks import get_task

        task = job.wildcards["task"]
        return files(get_task(task).dataset, eval_languages(cfg, job.wildcards["variant"], task))
    raise ValueError(f"{job.rule} is not a GPU rule ({', '.join(GPU_RULES)})")


def job_work(cfg: Mapping[str, Any], job: Job, data: DataSource) -> Work:
    """What `job` computes (see `polyroute.sizing.work`)."""
    from polyroute.pipeline.evaluate import task_settings

    extraction, routing, w = cfg["extraction"], cfg["datasets"]["routing"], job.wildcards
    max_length = int(extraction["max_length"])
    if job.rule == "extract_routing":
        return routing_work(data, routing["name"], routing.get("split"), cfg["languages"], max_length,
                            shard=int(w["shard"]), shards=int(extraction["shards"]))
    if job.rule == "untrained_routing":
        return routing_work(data, routing["name"], routing.get("split"), cfg["languages"], max_length,
                            per_language=cfg["stats"]["noise_floor"]["items"])
    if job.rule == "task_routing":
        ref = cfg["interventions"]["task_data"]
        return routing_work(data, ref["name"], ref.get("split"), [cfg["reference_language"]], max_length)
    if job.rule == "intervention_routing":
        return routing_work(data, routing["name"], routing.get("split"), cfg["languages"], max_length,
                            per_language=cfg["interventions"]["shift_items"])
    if job.rule == "train_subnetwork":
        training = cfg["datasets"]["training"]
        return train_work(data, training["name"], training.get("split"), w["target"], cfg["training"])
    if job.rule == "evaluate":
        return eval_work(data, w["task"], eval_languages(cfg, w["variant"], w["task"]),
                         task_settings(cfg["evaluation"], w["task"]))
    raise ValueError(f"{job.rule} is not a GPU rule ({', '.join(GPU_RULES)})")
