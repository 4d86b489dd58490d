"""From per-item records to a task's numbers: each metric as a statistic of a set of items.

A metric is a mean of per-item scores, or for perplexity a ratio of summed log-likelihood to summed
bytes, words or tokens (`polyroute.evaluate.metrics`), so one percentile bootstrap over items gives
the 95% interval of any of them, and the paired bootstrap (the same resampled items for two variants)
the interval of a difference between variants, e.g. an adapter's gain over base.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from polyroute.evaluate import metrics
from polyroute.evaluate.tasks import Task

__all__ = ["PERPLEXITIES", "statistic", "interval"]

Statistic = Callable[[np.ndarray], float]

# perplexity metric -> its function of (per-text log-likelihoods, per-text records)
PERPLEXITIES: dict[str, Callable[[np.ndarray, list[dict]], float]] = {
    "bits_per_byte": lambda ll, recs: metrics.bits_per_byte(ll, [r["text"] for r in recs]),
    "byte_perplexity": lambda ll, recs: metrics.byte_perplexity(ll, [r["text"] for r in recs]),
    "word_perplexity": lambda ll, recs: metrics.word_perplexity(ll, [r["text"] for r in recs]),
    "token_perplexity": lambda ll, recs: metrics.token_perplexity(ll, [r["tokens"] for r in recs]),
}


def statistic(task: Task, metric: str, records: Sequence[dict]) -> Statistic:
    """The function of an item-index array that gives `metric` over those items."""
    if task.output == "perplexity" and metric in PERPLEXITIES:
        ll = np.array([r["logprob"] for r in records], dtype=float)
        records = list(records)
        return lambda idx: PERPLEXITIES[metric](ll[idx], [records[i] for i in idx])
    column = np.array([float(r[metric]) for r in records], dtype=float)
    return lambda idx: float(column[idx].mean())


def interval(stat: Statistic, n: int, *, versus: Statistic | None = None, resamples: int, seed: int) -> list[float]:
    """95% percentile bootstrap interval of `stat` over n items (of ``stat - versus`` when paired)."""
    return list(metrics.statistic_ci(stat, n, versus=versus, resamples=resamples, seed=seed))
