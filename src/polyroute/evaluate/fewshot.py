"""Few-shot prompts built as lm-evaluation-harness builds them (0.4.x ``fewshot_context``).

Shots are drawn per item in item order from one seeded ``random.Random`` (the harness' default
sampler, seed 1234), or taken from the start of the pool (``first_n``); when shots come from the test
split itself, the item being asked is never one of its own shots. Each shot is
``prompt + target_delimiter + target + fewshot_delimiter``; the item's own prompt follows.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from polyroute.evaluate.tasks import Row, Task

__all__ = ["HARNESS_FEWSHOT_SEED", "contexts"]

HARNESS_FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed


def _shots(task: Task, rnd: random.Random, pool: Sequence[Row], item: Row, n: int, same_split: bool) -> list[Row]:
    if n == 0:
        return []
    if task.fewshot_sampler == "first_n":
        candidates = [r for r in pool if r["id"] != item["id"]] if same_split else list(pool)
        if n > len(candidates):
            raise ValueError(f"{task.name}: {n} shots asked, only {len(candidates)} items to draw them from")
        return candidates[:n]
    if same_split:  # draw one extra so that removing the item itself still leaves n
        drawn = [r for r in rnd.sample(list(pool), n + 1) if r["id"] != item["id"]][:n]
        if len(drawn) < n:
            drawn = rnd.sample([r for r in pool if r["id"] != item["id"]], n)
        return drawn
    return rnd.sample(list(pool), n)


def contexts(task: Task, items: Sequence[Row], pool: Sequence[Row], code: str, num_fewshot: int,
             *, seed: int = HARNESS_FEWSHOT_SEED) -> list[str]:
    """The full prompt of every item, in item order. `pool` holds the few-shot split's records."""
    if num_fewshot < 0:
        raise ValueError(f"num_fewshot must be >= 0, got {num_fewshot}")
    if num_fewshot and task.target is None:
        raise ValueError(f"task {task.name} has no target to show in few-shot examples")
    if num_fewshot and len(pool) < num_fewshot:
        raise ValueError(f"{task.name}: {num_fewshot} shots asked, the few-shot split has {len(pool)} items")
    same_split = task.fewshot_split in (None, task.test_split)
    rnd = random.Random(seed)
    out = []
    for item in items:
        parts = [task.prompt(shot, code) + task.target_delimiter + task.target(shot, code) + task.fewshot_delimiter
                 for shot in _shots(task, rnd, pool, item, num_fewshot, same_split)]
        out.append("".join(parts) + task.prompt(item, code))
    return out
