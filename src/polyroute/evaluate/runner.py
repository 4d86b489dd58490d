"""Run one task on one language's items: prompts -> model -> per-item records -> metrics with CIs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyroute.evaluate import answers, metrics
from polyroute.evaluate.fewshot import contexts
from polyroute.evaluate.generation import generate_greedy
from polyroute.evaluate.scoring import (encode_pair, encode_requests, loglikelihoods, model_max_length,
                                        prefix_token_id, rolling_windows)
from polyroute.evaluate.tasks import Row, Task

__all__ = ["EvalSettings", "run_task"]


@dataclass(frozen=True)
class EvalSettings:
    """How a task is run (the config's `evaluation` block, per task)."""

    num_fewshot: int = 0
    batch_size: int = 16
    max_new_tokens: int = 256
    bootstrap: int = 1000
    seed: int = 0


def _choice_items(model, tokenizer, task: Task, items: Sequence[Row], prompts: list[str],
                  settings: EvalSettings, max_length: int) -> list[dict]:
    requests, spans = [], []
    for prompt, item in zip(prompts, items):
        choices = task.choices(item)
        spans.append((len(requests), len(choices)))
        requests += [(prompt, task.target_delimiter + choice) for choice in choices]
    scored = loglikelihoods(model, encode_requests(tokenizer, requests), batch_size=settings.batch_size,
                            max_length=max_length)
    records = []
    for item, prompt, (start, n) in zip(items, prompts, spans):
        lls = [s.logprob for s in scored[start:start + n]]
        choices = task.choices(item)
        gold = task.gold(item)
        records.append({"id": item["id"], "prompt": prompt, "choices": choices, "loglikelihoods": lls,
                        "prediction": int(np.argmax(lls)), "gold": gold,
                        **metrics.choice_scores(lls, choices, gold)})
    return records


def _generated_items(model, tokenizer, task: Task, items: Sequence[Row], prompts: list[str], code: str,
                     settings: EvalSettings, max_length: int) -> list[dict]:
    outputs = generate_greedy(model, tokenizer, prompts, until=task.until(code),
                              max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                              max_length=max_length)
    records = []
    for item, prompt, output in zip(items, prompts, outputs):
        scores, gold, filtered = answers.score_generation(task.name, output, item, code)
        records.append({"id": item["id"], "prompt": prompt, "generation": output, "filtered": filtered,
                        "gold": gold, **scores})
    return records


def _perplexity_items(model, tokenizer, items: Sequence[Row], settings: EvalSettings,
                      max_length: int) -> list[dict]:
    prefix = prefix_token_id(tokenizer)
    windows, owner = [], []
    for i, item in enumerate(items):
        tokens = list(encode_pair(tokenizer, "", item["text"]).continuation)
        for window in rolling_windows(tokens, prefix, max_length):
            windows.append(window)
            owner.append(i)
    scored = loglikelihoods(model, windows, batch_size=settings.batch_size, max_length=max_length)
    logprob = np.zeros(len(items))
    n_tokens = np.zeros(len(items), dtype=np.int64)
    for i, s in zip(owner, scored):
        logprob[i] += s.logprob
        n_tokens[i] += s.n_tokens
    return [{"id": item["id"], "logprob": float(logprob[i]), "tokens": int(n_tokens[i]),
             "bytes": len(item["text"].encode("utf-8")), "words": len(item["text"].split())}
            for i, item in enumerate(items)]


def _aggregate(task: Task, records: list[dict], settings: EvalSettings) -> tuple[dict, dict]:
    """Metric values over the items and their 95% bootstrap intervals (items resampled)."""
    if task.output == "perplexity":
        columns = {k: np.array([r[k] for r in records], dtype=float) for k in ("logprob", "tokens", "bytes", "words")}
        values, intervals = {}, {}
        for name, (denominator, transform) in metrics.PERPLEXITIES.items():
            def statistic(idx, denominator=denominator, transform=transform):
                return transform(columns["logprob"][idx].sum(), columns[denominator][idx].sum())
            values[name] = statistic(np.arange(len(records)))
            intervals[name] = metrics.bootstrap_interval(statistic, len(records), resamples=settings.bootstrap,
                                                         seed=settings.seed)
        return values, intervals
    values, intervals = {}, {}
    for name in task.metrics:
        column = np.array([float(r[name]) for r in records])
        values[name] = float(column.mean())
        intervals[name] = metrics.bootstrap_interval(lambda idx, c=column: float(c[idx].mean()), len(records),
                                                     resamples=settings.bootstrap, seed=settings.seed)
    return values, intervals


def run_task(model: Any, tokenizer: Any, task: Task, items: Sequence[Row], *, language: str,
             pool: Sequence[Row] = (), settings: EvalSettings = EvalSettings()) -> dict[str, Any]:
    """Evaluate `items` (records of one language) and return metrics, intervals and per-item records."""
    if not items:
        raise ValueError(f"{task.name}/{language}: no items to evaluate")
    code = task.code(language)
    max_length = model_max_length(model, tokenizer)
    if task.output == "perplexity":
        records = _perplexity_items(model, tokenizer, items, settings, max_length)
    else:
        prompts = contexts(task, items, pool, code, settings.num_fewshot)
        if task.output == "choice":
            records = _choice_items(model, tokenizer, task, items, prompts, settings, max_length)
        else:
            records = _generated_items(model, tokenizer, task, items, prompts, code, settings, max_length)
    values, intervals = _aggregate(task, records, settings)
    if task.consistency:
        from polyroute.evaluate.langid import consistency_flags

        flags = consistency_flags([r["generation"] for r in records], language)
        for record, flag in zip(records, flags):
            record["language_consistent"] = bool(flag)
        column = np.array(flags, dtype=float)
        values["language_consistency"] = float(column.mean())
        intervals["language_consistency"] = metrics.bootstrap_interval(
            lambda idx: float(column[idx].mean()), len(records), resamples=settings.bootstrap, seed=settings.seed)
    return {"task": task.name, "language": language, "harness_task": task.harness(code), "n_items": len(records),
            "metrics": values, "ci95": intervals, "items": records}


def finite(value: float) -> float | None:
    """JSON has no NaN: undefined values are written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


def mapping_finite(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: finite(v) if isinstance(v, float) else v for k, v in values.items()}
