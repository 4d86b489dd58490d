"""Pure metric functions of the evaluation stage (no torch), equal to lm-evaluation-harness 0.4.13.

Each function reproduces the harness' own definition, so a number computed here equals the
harness' number on the same model outputs (``tests/unit/test_eval_metrics.py`` calls the harness'
functions on the same inputs):

===========================  ==================================================================
here                         harness 0.4.13
===========================  ==================================================================
`normalize_answer`,          ``tasks/tydiqa/utils.py`` (MLQA/SQuAD normalisation, 9 TyDiQA
`token_f1`, `qa_scores`      languages): lowercase, drop every Unicode ``P*`` character and
                             ASCII punctuation, articles for en (a/an/the) and ar (the prefix
                             ال), collapse whitespace; F1 and EM take the max over gold answers
`exact_match`                ``api/metrics.py::exact_match_hf_evaluate`` (regexes removed first,
                             then case, then *ASCII* punctuation, then digits)
`choice_scores`              ``api/task.py`` multiple_choice: acc = argmax of log-likelihoods,
                             acc_norm = argmax of log-likelihood / len(choice) in *characters*,
                             acc_bytes = ... / UTF-8 bytes; ties go to the first choice
`pair_correct`               MultiBLiMP task (choices [sen, wrong_sen], gold 0): a tie counts
                             as correct, as argmax picks the first
`word_perplexity`,           ``loglikelihood_rolling`` metrics: exp(-sum ll / sum units), words
`byte_perplexity`,           = ``len(re.split(r"\\s+", text))``, bytes = UTF-8 bytes;
`bits_per_byte`              bits_per_byte = -sum ll / sum bytes / ln 2
===========================  ==================================================================

`token_perplexity` (exp of minus the mean token log-likelihood over all scored tokens) and the
bootstrap intervals are ours: the harness reports a standard error, not a confidence interval.
`bootstrap_ci` is the percentile bootstrap of the mean (numpy ``default_rng(seed)``,
`DEFAULT_RESAMPLES` resamples of the items with replacement); `paired_bootstrap_ci` resamples
*items* and takes the mean of the per-item differences, which is the right interval for "gain vs
base" when both variants answered the same items.
"""

from __future__ import annotations

import math
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from polyroute.languages import iso639_1

__all__ = [
    "DEFAULT_RESAMPLES",
    "PUNCTUATION",
    "normalize_answer",
    "token_f1",
    "normalized_exact_match",
    "max_over_golds",
    "qa_scores",
    "exact_match",
    "choice_scores",
    "pair_correct",
    "token_perplexity",
    "count_words",
    "count_bytes",
    "word_perplexity",
    "byte_perplexity",
    "bits_per_byte",
    "bootstrap_ci",
    "paired_bootstrap_ci",
    "statistic_ci",
]

DEFAULT_RESAMPLES = 10_000

# Every Unicode punctuation character (categories Pc Pd Pe Pf Pi Po Ps: 「」 ، ¿ ।  ...) plus
# ASCII punctuation, which also holds symbols ($ + < = > ^ ` | ~) that are not category P.
PUNCTUATION: frozenset[str] = frozenset(
    chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")
) | frozenset(string.punctuation)

# Languages (ISO 639-1, as the harness' TyDiQA tasks name them) whose articles are removed.
_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "ar": re.compile(r"(?:^|\s)ال"),
}

_ASCII_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)
_DIGITS_TABLE = str.maketrans("", "", string.digits)


# --- extractive QA (TyDiQA-GoldP, MLQA) ------------------------------------------------------

def normalize_answer(text: str, language: str) -> str:
    """MLQA normalisation: lowercase, drop punctuation, drop articles (en, ar), collapse spaces.

    `language` is a FLORES code; only languages whose ISO 639-1 code is ``en`` or ``ar`` (as
    the harness names them) lose articles. Order as in the harness: lower, punctuation,
    articles, whitespace.
    """
    text = "".join(ch for ch in text.lower() if ch not in PUNCTUATION)
    articles = _ARTICLES.get(iso639_1(language) or "")
    if articles is not None:
        text = articles.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str, language: str) -> float:
    """Bag-of-tokens F1 between the normalised prediction and gold (0 when nothing is shared)."""
    pred_tokens = normalize_answer(prediction, language).split()
    gold_tokens = normalize_answer(gold, language).split()
    shared = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if shared == 0:
        return 0.0
    precision = shared / len(pred_tokens)
    recall = shared / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def normalized_exact_match(prediction: str, gold: str, language: str) -> float:
    """1.0 when prediction and gold are equal after `normalize_answer`, else 0.0."""
    return float(normalize_answer(prediction, language) == normalize_answer(gold, language))


def max_over_golds(
    metric: Callable[[str, str, str], float], prediction: str, golds: Sequence[str], language: str
) -> float:
    """Best score of `prediction` against any of the gold answers."""
    if isinstance(golds, str) or len(golds) == 0:
        raise ValueError(f"golds must be a non-empty list of answers, got {golds!r}")
    return max(metric(prediction, gold, language) for gold in golds)


def qa_scores(prediction: str, golds: Sequence[str], language: str) -> dict[str, float]:
    """TyDiQA-GoldP item scores ``{"exact_match", "f1"}``; the prediction is stripped first."""
    prediction = prediction.strip()
    return {
        "exact_match": max_over_golds(normalized_exact_match, prediction, golds, language),
        "f1": max_over_golds(token_f1, prediction, golds, language),
    }


# --- generation exact match (MGSM) -----------------------------------------------------------

def exact_match(
    prediction: str,
    reference: str,
    *,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
    regexes_to_ignore: Sequence[str] = (),
) -> float:
    """The harness' ``exact_match`` for one item: 1.0 or 0.0.

    Regexes are removed first, then case, then ASCII punctuation only (``string.punctuation``,
    so ``-`` and ``$`` go but ``。`` and ``،`` stay), then digits.
    """
    for pattern in regexes_to_ignore:
        prediction = re.sub(pattern, "", prediction)
        reference = re.sub(pattern, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    if ignore_punctuation:
        prediction = prediction.translate(_ASCII_PUNCTUATION_TABLE)
        reference = reference.translate(_ASCII_PUNCTUATION_TABLE)
    if ignore_numbers:
        prediction = prediction.translate(_DIGITS_TABLE)
        reference = reference.translate(_DIGITS_TABLE)
    return float(prediction == reference)


# --- log-likelihood multiple choice (Belebele, MultiBLiMP) -----------------------------------

def _finite(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{what} must be a non-empty list of numbers, got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(f"{what} contains NaN: {values!r}")
    return array


def choice_scores(loglikelihoods: Sequence[float], choices: Sequence[str], gold: int) -> dict[str, float]:
    """acc, acc_norm and acc_bytes of one multiple-choice item.

    `loglikelihoods[i]` is the summed log-probability of continuation ``choices[i]`` (with the
    task's target delimiter, e.g. " A"); the normalisers are the lengths of ``choices[i]``
    itself, without the delimiter, as the harness computes them. Ties go to the first choice.
    """
    lls = _finite(loglikelihoods, "loglikelihoods")
    if len(choices) != lls.size:
        raise ValueError(f"{lls.size} log-likelihoods for {len(choices)} choices")
    if not 0 <= gold < len(choices):
        raise ValueError(f"gold index {gold} is outside the {len(choices)} choices")
    chars = np.array([len(choice) for choice in choices], dtype=np.float64)
    utf8 = np.array([len(choice.encode("utf-8")) for choice in choices], dtype=np.float64)
    if (chars == 0).any():
        raise ValueError(f"empty choice in {list(choices)!r}: acc_norm divides by its length")
    return {
        "acc": float(np.argmax(lls) == gold),
        "acc_norm": float(np.argmax(lls / chars) == gold),
        "acc_bytes": float(np.argmax(lls / utf8) == gold),
    }


def pair_correct(good_loglikelihood: float, bad_loglikelihood: float) -> float:
    """MultiBLiMP item: 1.0 when the grammatical sentence is at least as likely (ties count)."""
    lls = _finite([good_loglikelihood, bad_loglikelihood], "pair log-likelihoods")
    return float(lls[0] >= lls[1])


# --- perplexity ------------------------------------------------------------------------------

def _mean_loglikelihood(loglikelihoods: Sequence[float], units: Sequence[int], what: str) -> float:
    """sum(ll) / sum(units), summed in order as the harness' ``weighted_mean`` does."""
    lls = _finite(loglikelihoods, "loglikelihoods")
    if len(units) != lls.size:
        raise ValueError(f"{lls.size} log-likelihoods for {len(units)} {what} counts")
    total = sum(units)
    if total <= 0:
        raise ValueError(f"no {what}s to normalise by")
    return sum(float(x) for x in lls) / total


def token_perplexity(loglikelihoods: Sequence[float], token_counts: Sequence[int]) -> float:
    """exp(-sum of per-text summed token log-likelihoods / number of scored tokens)."""
    return math.exp(-_mean_loglikelihood(loglikelihoods, token_counts, "token"))


def count_words(text: str) -> int:
    """Words as the harness counts them: ``len(re.split(r"\\s+", text))`` (edges count too)."""
    return len(re.split(r"\s+", text))


def count_bytes(text: str) -> int:
    """UTF-8 bytes of `text`."""
    return len(text.encode("utf-8"))


def word_perplexity(loglikelihoods: Sequence[float], texts: Sequence[str]) -> float:
    """The harness' word_perplexity: exp(-sum ll / sum words)."""
    return math.exp(-_mean_loglikelihood(loglikelihoods, [count_words(t) for t in texts], "word"))


def byte_perplexity(loglikelihoods: Sequence[float], texts: Sequence[str]) -> float:
    """The harness' byte_perplexity: exp(-sum ll / sum UTF-8 bytes)."""
    return math.exp(-_mean_loglikelihood(loglikelihoods, [count_bytes(t) for t in texts], "byte"))


def bits_per_byte(loglikelihoods: Sequence[float], texts: Sequence[str]) -> float:
    """The harness' bits_per_byte: -sum ll / sum UTF-8 bytes / ln 2."""
    return -_mean_loglikelihood(loglikelihoods, [count_bytes(t) for t in texts], "byte") / math.log(2)


# --- confidence intervals --------------------------------------------------------------------

_DRAWS_PER_CHUNK = 1 << 22  # resample indices held at once (32 MiB of int64)


def _resampled_indices(n: int, resamples: int, seed: int, confidence: float) -> Iterator[np.ndarray]:
    """Chunks of bootstrap index vectors (rows of length n), drawn with
    ``numpy.random.default_rng(seed)``, one ``integers(0, n, size=(k, n))`` call per chunk, so the
    draws do not depend on the chunking."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    if n < 1:
        raise ValueError("a bootstrap needs at least one item")
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _DRAWS_PER_CHUNK // n)
    for start in range(0, resamples, per_chunk):
        yield rng.integers(0, n, size=(min(start + per_chunk, resamples) - start, n))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The (1-c)/2 and (1+c)/2 quantiles (numpy's default linear interpolation)."""
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (per-item scores): the quantiles of
    the means of `resamples` resampled index vectors (see `_resampled_indices`)."""
    array = _finite(values, "values")
    means = [array[chunk].mean(axis=1) for chunk in _resampled_indices(array.size, resamples, seed, confidence)]
    return _interval(np.concatenate(means), confidence)


def paired_bootstrap_ci(
    variant: Sequence[float],
    base: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(variant - base) over the same items.

    ``variant[i]`` and ``base[i]`` must score the same item; resampling items keeps the pairs
    together, so the item-difficulty variance shared by both variants cancels.
    """
    a = _finite(variant, "variant")
    b = _finite(base, "base")
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same items: {a.size} vs {b.size}")
    return bootstrap_ci(a - b, confidence=confidence, resamples=resamples, seed=seed)


def statistic_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    versus: Callable[[np.ndarray], float] | None = None,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of any statistic of n items (a function of an index array,
    e.g. a ratio of sums for perplexity), or with `versus` of ``statistic - versus`` on the same
    resampled items (paired). Same draws as `bootstrap_ci`, so for a mean both agree."""
    values = [statistic(idx) - (versus(idx) if versus is not None else 0.0)
              for chunk in _resampled_indices(n, resamples, seed, confidence) for idx in chunk]
    return _interval(np.asarray(values, dtype=np.float64), confidence)
