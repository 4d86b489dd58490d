"""Run one task on one language's items: prompts -> model -> per-item records -> metrics with CIs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyroute.config import schema_defaults
from polyroute.evaluate import aggregate, langid, metrics
from polyroute.evaluate.fewshot import contexts
from polyroute.evaluate.generation import generate_greedy
from polyroute.evaluate.scoring import (encode_pair, encode_requests, loglikelihoods, model_max_length,
                                        prefix_token_id, rolling_windows)
from polyroute.evaluate.tasks import Row, Task

__all__ = ["EvalSettings", "run_task"]


_EVALUATION = schema_defaults("evaluation")


@dataclass(frozen=True)
class EvalSettings:
    """How a task is run (the config's `evaluation` block, per task; defaults from its schema)."""

    num_fewshot: int = 0  # a task's own setting: no shots unless asked
    batch_size: int = _EVALUATION["batch_size"]
    batch_tokens: int = _EVALUATION["batch_tokens"]
    max_new_tokens: int = _EVALUATION["max_new_tokens"]
    static_cache: bool | None = _EVALUATION["static_cache"]  # None: on CUDA (generate_greedy's default)
    bootstrap: int = _EVALUATION["bootstrap"]
    seed: int = _EVALUATION["seed"]


def _choice_items(model, tokenizer, task: Task, items: Sequence[Row], prompts: list[str],
                  settings: EvalSettings, max_length: int) -> list[dict]:
    requests, spans = [], []
    for prompt, item in zip(prompts, items):
        choices = task.choices(item)
        spans.append((len(requests), len(choices)))
        requests += [(prompt, task.target_delimiter + choice) for choice in choices]
    scored = loglikelihoods(model, encode_requests(tokenizer, requests), batch_size=settings.batch_size,
                            batch_tokens=settings.batch_tokens, max_length=max_length)
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
                              max_length=max_length, static_cache=settings.static_cache)
    records = []
    language = items[0]["language"]
    for item, prompt, output in zip(items, prompts, outputs):
        scores, gold, filtered = task.score(output, item, language)
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
    scored = loglikelihoods(model, windows, batch_size=settings.batch_size, batch_tokens=settings.batch_tokens,
                            max_length=max_length)
    logprob = np.zeros(len(items))
    n_tokens = np.zeros(len(items), dtype=np.int64)
    for i, s in zip(owner, scored):
        logprob[i] += s.logprob
        n_tokens[i] += s.n_tokens
    return [{"id": item["id"], "text": item["text"], "logprob": float(logprob[i]), "tokens": int(n_tokens[i]),
             "bytes": metrics.count_bytes(item["text"]), "words": metrics.count_words(item["text"])}
            for i, item in enumerate(items)]


def _aggregate(task: Task, records: list[dict], metric_names: Sequence[str],
               settings: EvalSettings) -> tuple[dict, dict]:
    """Metric values over the items and their 95% bootstrap intervals (items resampled)."""
    values, intervals = {}, {}
    every = np.arange(len(records))
    for name in metric_names:
        stat = aggregate.statistic(task, name, records)
        values[name] = stat(every)
        intervals[name] = aggregate.interval(stat, len(records), resamples=settings.bootstrap, seed=settings.seed)
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
    names = list(task.metrics)
    if task.consistency and langid.is_supported(language):
        flags = langid.consistency_flags([r["generation"] for r in records], language)
        for record, flag in zip(records, flags):
            record["language_consistency"] = float(flag)
        names.append("language_consistency")
    values, intervals = _aggregate(task, records, names, settings)
    return {"task": task.name, "language": language, "harness_task": task.harness(code), "n_items": len(records),
            "metrics": values, "ci95": intervals, "items": records}

