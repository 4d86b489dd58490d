"""From per-item records to a task's numbers: metric statistics and their bootstrap intervals.

Every metric is a statistic of a set of items (a mean of per-item scores, or for perplexity a ratio
of summed log-likelihood to summed bytes, words or tokens), so one percentile bootstrap over items
gives the 95% interval of any of them, and the paired bootstrap (the same resampled items for two
variants) gives the interval of a difference between variants, e.g. an adapter's gain over base.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from polyroute.evaluate.tasks import Task

__all__ = ["PERPLEXITIES", "statistic", "bootstrap_interval", "paired_interval"]

Statistic = Callable[[np.ndarray], float]

# perplexity metric -> (the count it is normalised by, value from (summed log-likelihood, summed count))
PERPLEXITIES: dict[str, tuple[str, Callable[[float, float], float]]] = {
    "bits_per_byte": ("bytes", lambda ll, n: -ll / n / math.log(2)),
    "byte_perplexity": ("bytes", lambda ll, n: math.exp(-ll / n)),
    "word_perplexity": ("words", lambda ll, n: math.exp(-ll / n)),
    "token_perplexity": ("tokens", lambda ll, n: math.exp(-ll / n)),
}


def statistic(task: Task, metric: str, records: Sequence[dict]) -> Statistic:
    """The function of an item-index array that gives `metric` over those items."""
    if metric in PERPLEXITIES and task.output == "perplexity":
        count, value = PERPLEXITIES[metric]
        ll = np.array([r["logprob"] for r in records], dtype=float)
        n = np.array([r[count] for r in records], dtype=float)
        return lambda idx: value(float(ll[idx].sum()), float(n[idx].sum()))
    column = np.array([float(r[metric]) for r in records], dtype=float)
    return lambda idx: float(column[idx].mean())


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    if n < 1 or resamples < 1:
        raise ValueError(f"need at least one item and one resample, got {n} and {resamples}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _percentiles(values: np.ndarray, level: float) -> list[float]:
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100.0 - tail])
    return [float(low), float(high)]


def bootstrap_interval(stat: Statistic, n: int, *, resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of `stat` over `n` items (items drawn with replacement)."""
    draws = _resamples(n, resamples, seed)
    return _percentiles(np.array([stat(idx) for idx in draws]), level)


def paired_interval(stat_a: Statistic, stat_b: Statistic, n: int, *, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95) -> list[float]:
    """Interval of ``stat_a - stat_b`` when both are computed on the same resampled items."""
    draws = _resamples(n, resamples, seed)
    return _percentiles(np.array([stat_a(idx) - stat_b(idx) for idx in draws]), level)
