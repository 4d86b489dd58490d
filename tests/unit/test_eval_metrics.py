"""Evaluation metrics and answer extraction: worked examples, and equality with lm-evaluation-harness.

The harness (lm-eval 0.4.13, a dev dependency) is called on the same inputs through its own
functions: the TyDiQA task's utils, ``exact_match_hf_evaluate``, the regex / whitespace /
take-first filters, and ``ConfigurableTask.process_results`` for multiple choice and rolling
log-likelihood (called on a stand-in task object, since a real task would load its dataset).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from lm_eval.api import metrics as harness_metrics
from lm_eval.api.task import ConfigurableTask
from lm_eval.filters.extraction import RegexFilter, WhitespaceFilter
from lm_eval.filters.selection import TakeFirstFilter
from lm_eval.tasks.mgsm.utils import LANGUAGES as HARNESS_MGSM
from lm_eval.tasks.tydiqa import utils as harness_tydiqa

from polyroute.evaluate.answers import (
    FLEXIBLE_NUMBER,
    INVALID,
    MGSM_ANSWER_REGEX,
    mgsm_direct_predictions,
    mgsm_exact_match,
    mgsm_native_cot_predictions,
    polymath_equal,
    polymath_extract,
    regex_extract,
)
from polyroute.evaluate.metrics import (
    PUNCTUATION,
    bits_per_byte,
    bootstrap_ci,
    byte_perplexity,
    choice_scores,
    count_words,
    exact_match,
    normalize_answer,
    pair_correct,
    paired_bootstrap_ci,
    qa_scores,
    token_f1,
    token_perplexity,
    word_perplexity,
)
from polyroute.languages import LanguageNotInDataset, from_iso639_1

# --- TyDiQA / MLQA normalisation, F1, EM -------------------------------------------------------

QA_CASES = [  # (prediction, golds, ISO 639-1 as the harness' TyDiQA tasks name languages)
    ("The Eiffel Tower", ["Eiffel Tower"], "en"),
    ("an apple a day", ["apple day"], "en"),
    ("theatre", ["the atre"], "en"),  # article only as a whole word
    ("the cat", ["cat"], "sw"),  # no article removal outside en/ar
    ("القاهرة", ["قاهرة"], "ar"),  # ال prefix dropped at the start of a word
    ("مدينة القاهرة", ["مدينة قاهرة"], "ar"),
    ("حال", ["ح"], "ar"),  # ال inside a word stays
    ("「東京」", ["東京"], "ko"),  # CJK brackets are Unicode punctuation
    ("¿Dónde? ¡Aquí!", ["dónde aquí"], "id"),
    ("١٢٣، ٤٥٦", ["١٢٣ ٤٥٦"], "ar"),  # Arabic comma
    ("Москва — столица", ["москва столица"], "ru"),
    ("কলকাতা।", ["কলকাতা"], "bn"),  # danda
    ("$5 + 3 = 8", ["5 3 8"], "fi"),  # ASCII symbols are removed too (string.punctuation)
    ("half of a half", ["a half", "half"], "en"),
    ("", ["something"], "te"),
    ("only punctuation ...", ["!!!"], "en"),
    ("  spaced\tout\nanswer ", ["spaced out answer"], "sw"),
    ("Ελληνικά, ναι.", ["ελληνικά ναι"], "ru"),
]


@pytest.mark.parametrize(("prediction", "golds", "iso"), QA_CASES)
def test_qa_scores_equal_the_harness_tydiqa_task(prediction, golds, iso):
    ours = qa_scores(prediction, golds, from_iso639_1(iso))
    theirs = harness_tydiqa.process_results_lang({"answers": golds}, [prediction], iso)
    assert ours["exact_match"] == float(theirs["exact_match"])
    assert ours["f1"] == pytest.approx(theirs["f1"], abs=1e-15)
    for gold in golds:
        assert normalize_answer(gold, from_iso639_1(iso)) == harness_tydiqa.normalize_answer(gold, iso)


def test_normalisation_worked_examples():
    assert normalize_answer("The  Cat, the HAT!", "eng_Latn") == "cat hat"
    assert normalize_answer("The  Cat, the HAT!", "deu_Latn") == "the cat the hat"
    assert normalize_answer("「答え」、です。", "jpn_Jpan") == "答えです"
    assert normalize_answer("الكتاب الجديد", "arb_Arab") == "كتاب جديد"
    assert normalize_answer("الكتاب", "ary_Arab") == "الكتاب"  # no ISO 639-1 "ar": kept, as the harness
    assert normalize_answer("¿Qué?", "spa_Latn") == "qué"
    assert {"「", "」", "،", "¿", "।", "—", "$", "+"} <= PUNCTUATION
    assert "٣" not in PUNCTUATION and "a" not in PUNCTUATION


def test_token_f1_by_hand():
    # pred "big red dog" vs gold "red dog": shared 2, precision 2/3, recall 1 -> F1 0.8
    assert token_f1("big red dog", "red dog", "eng_Latn") == pytest.approx(0.8)
    # repeated tokens count by multiplicity: shared min(2,1)=1, P 1/2, R 1 -> 2/3
    assert token_f1("dog dog", "dog", "eng_Latn") == pytest.approx(2 / 3)
    assert token_f1("", "dog", "eng_Latn") == 0.0
    assert token_f1("the", "a", "eng_Latn") == 0.0  # both normalise to nothing
    assert qa_scores(" red dog \n", ["blue", "Red dog."], "eng_Latn") == {"exact_match": 1.0, "f1": 1.0}


def test_qa_scores_rejects_a_bare_string_of_golds():
    with pytest.raises(ValueError, match="non-empty list"):
        qa_scores("x", "x", "eng_Latn")
    with pytest.raises(ValueError, match="non-empty list"):
        qa_scores("x", [], "eng_Latn")


# --- exact match -------------------------------------------------------------------------------

EM_CASES = [
    ("1,234.", "1234", {"ignore_case": True, "ignore_punctuation": True}),
    ("$5", "5", {"ignore_case": True, "ignore_punctuation": True}),
    ("-5", "5", {"ignore_case": True, "ignore_punctuation": True}),  # "-" is ASCII punctuation
    ("5。", "5", {"ignore_case": True, "ignore_punctuation": True}),  # "。" is not
    ("٥", "5", {"ignore_case": True, "ignore_punctuation": True}),
    ("ABC", "abc", {"ignore_case": True}),
    ("ABC", "abc", {}),
    ("a1b2", "ab", {"ignore_numbers": True}),
    ("The answer is 7", "7", {"regexes_to_ignore": [r"The answer is\s*"]}),
    ("Ответ — 7", "7", {"regexes_to_ignore": ["Ответ — "], "ignore_punctuation": True}),
    ("[invalid]", "18", {"ignore_case": True, "ignore_punctuation": True}),
    ("5 ", "5", {}),
    ("", "", {}),
]


@pytest.mark.parametrize(("prediction", "reference", "kwargs"), EM_CASES)
def test_exact_match_equals_the_harness(prediction, reference, kwargs):
    theirs = harness_metrics.exact_match_hf_evaluate(
        predictions=[prediction], references=[reference], **kwargs
    )["exact_match"]
    assert exact_match(prediction, reference, **kwargs) == float(theirs)


# --- MGSM answer extraction --------------------------------------------------------------------

GENERATIONS = [
    "18",
    "  18\n",
    "Janet has 16 - 3 - 4 = 9 eggs, so she makes $18.",
    "The total is 1,234. That is all.",
    "It costs $5",
    "Answer: -7",
    "No number here.",
    "",
    "x 3 y",  # single digits only match the second group
    "La réponse est 42.\nQuestion :",
    "Die Antwort lautet 1.000,5 Euro. Die Antwort lautet 7",
    "答案是 12。",
    "答案是 12",  # no 。: strict-match fails
    "Ответ — 30.",
    "Jibu ni 8",
    "The answer is 3.5, not 4",
    "..,",  # matches group 1 only with punctuation: stripped to itself
    "7 .",
]


def _harness_filter(filters, generation):
    responses = [[generation]]
    for step in filters:
        responses = list(step.apply(responses, [{}]))
    return responses[0]


@pytest.mark.parametrize("generation", GENERATIONS)
def test_mgsm_direct_equals_the_harness_filters(generation):
    ours = mgsm_direct_predictions(generation)
    assert ours["remove_whitespace"] == _harness_filter([WhitespaceFilter(), TakeFirstFilter()], generation)
    flexible = [RegexFilter(FLEXIBLE_NUMBER, group_select=-1), TakeFirstFilter()]
    assert ours["flexible-extract"] == _harness_filter(flexible, generation)


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.parametrize("iso", sorted(HARNESS_MGSM))
def test_mgsm_native_cot_equals_the_harness_filters(generation, iso):
    language = from_iso639_1(iso)
    ours = mgsm_native_cot_predictions(generation, language)
    strict = [RegexFilter(HARNESS_MGSM[iso]["REGEX"]), TakeFirstFilter()]
    assert ours["strict-match"] == _harness_filter(strict, generation)
    flexible = [RegexFilter(FLEXIBLE_NUMBER, group_select=-1), TakeFirstFilter()]
    assert ours["flexible-extract"] == _harness_filter(flexible, generation)


def test_mgsm_answer_regexes_are_the_harness_table():
    assert MGSM_ANSWER_REGEX == {iso: entry["REGEX"] for iso, entry in HARNESS_MGSM.items()}


def test_mgsm_extraction_worked_examples():
    direct = mgsm_direct_predictions("She pays $1,234. Then 7 more.")
    assert direct == {"remove_whitespace": "She pays $1,234. Then 7 more.", "flexible-extract": "7"}
    assert mgsm_direct_predictions("It costs $5.")["flexible-extract"] == "$5."
    assert mgsm_direct_predictions("in total 1,234.")["flexible-extract"] == "1,234."
    assert mgsm_direct_predictions("none")["flexible-extract"] == INVALID
    cot = mgsm_native_cot_predictions("答案是 1,200。后来 5", "zho_Hans")
    assert cot == {"strict-match": "1,200", "flexible-extract": "5"}
    assert mgsm_native_cot_predictions("Jibu ni 8.", "swh_Latn")["strict-match"] == "8."
    assert mgsm_native_cot_predictions("Jibu: 8", "swh_Latn")["strict-match"] == INVALID
    # scoring: ASCII punctuation and case ignored, against str(answer_number)
    assert mgsm_exact_match("1,234.", 1234) == 1.0
    assert mgsm_exact_match("$5", 5) == 1.0
    assert mgsm_exact_match("-5", 5) == 1.0
    assert mgsm_exact_match("5.5", 55) == 1.0  # the harness' quirk: "." is dropped too
    assert mgsm_exact_match(INVALID, 18) == 0.0
    with pytest.raises(LanguageNotInDataset, match="not in dataset 'mgsm'"):
        mgsm_native_cot_predictions("x", "ell_Grek")


def test_regex_extract_tuple_and_fallback_rules():
    assert regex_extract("a1 b22", r"(\d\d)|(\d)") == "1"  # first match, its non-empty group
    assert regex_extract("a1 b22", r"(\d\d)|(\d)", group_select=-1) == "22"
    assert regex_extract("ab", r"(x?)(y?)b") == INVALID  # a match whose groups are all empty
    assert regex_extract("ab", r"z", fallback="none") == "none"
    assert regex_extract("k:  v  ", r"k:(.*)") == "v"
    for generation in ["ab", "a1 b22", "k:  v  "]:
        for pattern, select in [(r"(\d\d)|(\d)", 0), (r"(x?)(y?)b", 0), (r"k:(.*)", -1)]:
            theirs = _harness_filter([RegexFilter(pattern, group_select=select), TakeFirstFilter()], generation)
            assert regex_extract(generation, pattern, select) == theirs


# --- PolyMath ----------------------------------------------------------------------------------

def test_polymath_extraction_follows_the_authors():
    assert polymath_extract(r"so \boxed{391}.") == "391"
    assert polymath_extract(r"\boxed{ \frac{5}{4} } and \boxed{2}") == r"\frac{5}{4}"  # first, spaces gone
    assert polymath_extract(r"\boxed{1, 2}") == "1,2"
    assert polymath_extract(r"\boxed{unclosed and \boxed{7}") == "7"  # first *complete* box
    assert polymath_extract("no box") is None
    assert polymath_extract(r"\boxed{}") == ""
    assert polymath_extract(r"答案是 $\boxed{١٢}$") == "١٢"


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("391", "391", True),
        ("391.0", "391", True),
        ("1,234", "1234", True),
        ("25%", "0.25", True),
        ("25\\%", "0.25", True),
        ("0.25", "25", True),  # percent forms: ref/100
        ("2500", "25", True),  # ref*100
        ("391.02", "391", True),  # within rel_tol 1e-4
        ("391.1", "391", False),
        ("-8", "8", False),
        ("x=8", "8", True),
        ("8", "x=8", True),
        ("(1,2)", "(1, 2)", True),
        ("[1,2]", "(1,2)", True),  # element-wise
        ("{5}", "5", True),
        ("ABC", "abc", True),
        (r"\frac{782}{2}", "391", False),  # symbolic branch not reproduced
        ("", "0", False),
        (None, "391", False),
    ],
)
def test_polymath_equal(prediction, reference, expected):
    assert polymath_equal(prediction, reference) is expected


# --- multiple choice, pairs --------------------------------------------------------------------

def _harness_choice_task(choices, gold):
    metrics = {"acc": None, "acc_norm": None, "acc_bytes": None}
    return SimpleNamespace(
        config=SimpleNamespace(process_results=None),
        _metric_fn_list=metrics,
        OUTPUT_TYPE="multiple_choice",
        doc_to_choice=lambda doc: choices,
        doc_to_target=lambda doc: gold,
        multiple_input=False,
        multiple_target=False,
    )


CHOICE_CASES = [
    ([-1.0, -2.0, -3.0, -4.0], ["A", "B", "C", "D"], 0),
    ([-4.0, -2.0, -2.0, -9.0], ["A", "B", "C", "D"], 2),  # tie: the first wins, gold 2 is wrong
    ([-10.0, -6.0], ["a long continuation", "short"], 0),  # acc_norm flips the decision
    ([-12.0, -7.0], ["日本語の文", "abcde"], 0),  # characters vs bytes differ
    ([-3.0, -3.0], ["Der Hund bellt.", "Der Hund bellen."], 0),  # MultiBLiMP tie
    ([-float("inf"), -50.0], ["x", "y"], 1),
]


@pytest.mark.parametrize(("lls", "choices", "gold"), CHOICE_CASES)
def test_choice_scores_equal_the_harness(lls, choices, gold):
    task = _harness_choice_task(choices, gold)
    theirs = ConfigurableTask.process_results(task, {}, [(ll, False) for ll in lls])
    assert choice_scores(lls, choices, gold) == {k: float(v) for k, v in theirs.items()}


def test_choice_scores_by_hand_and_errors():
    # -10/19 = -0.53 beats -6/5 = -1.2 once divided by characters
    assert choice_scores([-10.0, -6.0], ["a long continuation", "short"], 0) == {
        "acc": 0.0, "acc_norm": 1.0, "acc_bytes": 1.0,
    }
    # 5 chars / 15 bytes: -12/5 = -2.4 loses to -7/5 = -1.4 by characters, wins by bytes (-0.8)
    assert choice_scores([-12.0, -7.0], ["日本語の文", "abcde"], 0) == {
        "acc": 0.0, "acc_norm": 0.0, "acc_bytes": 1.0,
    }
    with pytest.raises(ValueError, match="outside"):
        choice_scores([-1.0, -2.0], ["A", "B"], 2)
    with pytest.raises(ValueError, match="3 log-likelihoods for 2 choices"):
        choice_scores([-1.0, -2.0, -3.0], ["A", "B"], 0)
    with pytest.raises(ValueError, match="NaN"):
        choice_scores([float("nan"), -2.0], ["A", "B"], 0)
    with pytest.raises(ValueError, match="empty choice"):
        choice_scores([-1.0, -2.0], ["", "B"], 0)


def test_pair_correct_counts_ties_as_the_harness_does():
    assert pair_correct(-3.0, -5.0) == 1.0
    assert pair_correct(-5.0, -3.0) == 0.0
    assert pair_correct(-3.0, -3.0) == 1.0
    for good, bad in [(-3.0, -5.0), (-5.0, -3.0), (-3.0, -3.0)]:
        task = _harness_choice_task(["good", "bad"], 0)
        theirs = ConfigurableTask.process_results(task, {}, [(good, False), (bad, False)])
        assert pair_correct(good, bad) == theirs["acc"]


# --- perplexity --------------------------------------------------------------------------------

def test_token_perplexity_by_hand():
    # two texts: 3 tokens with summed log-prob -3 ln 2, 1 token with -ln 2 -> mean -ln 2 per token
    assert token_perplexity([-3 * math.log(2), -math.log(2)], [3, 1]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="2 log-likelihoods for 1 token counts"):
        token_perplexity([-1.0, -2.0], [3])
    with pytest.raises(ValueError, match="no tokens"):
        token_perplexity([-1.0], [0])


def test_word_and_byte_perplexity_equal_the_harness():
    texts = ["Emperor penguins live in Antarctica.", " Москва — столица ", "東京は日本の首都です。"]
    lls = [-41.5, -33.25, -28.0]
    task = SimpleNamespace(
        config=SimpleNamespace(process_results=None),
        _metric_fn_list={"word_perplexity": None, "byte_perplexity": None, "bits_per_byte": None},
        OUTPUT_TYPE="loglikelihood_rolling",
        count_words=ConfigurableTask.count_words,
        count_bytes=ConfigurableTask.count_bytes,
    )
    items = {"word_perplexity": [], "byte_perplexity": [], "bits_per_byte": []}
    for text, ll in zip(texts, lls):
        task.doc_to_target = lambda doc, text=text: text
        for key, value in ConfigurableTask.process_results(task, {}, [ll]).items():
            items[key].append(value)
    assert word_perplexity(lls, texts) == harness_metrics.weighted_perplexity(items["word_perplexity"])
    assert byte_perplexity(lls, texts) == harness_metrics.weighted_perplexity(items["byte_perplexity"])
    assert bits_per_byte(lls, texts) == harness_metrics.bits_per_byte(items["bits_per_byte"])
    # by hand: " Москва — столица " splits into ["", Москва, —, столица, ""] = 5 words
    assert count_words(" Москва — столица ") == 5
    assert word_perplexity([-10.0], ["a b"]) == pytest.approx(math.exp(5.0))
    assert bits_per_byte([-8 * math.log(2)], ["abcd"]) == pytest.approx(2.0)


# --- bootstrap intervals -----------------------------------------------------------------------

def _slow_bootstrap(values, resamples, seed, confidence=0.95):
    rng = np.random.default_rng(seed)
    values = np.asarray(values, dtype=float)
    n = values.size
    means = [values[rng.integers(0, n, size=(1, n))[0]].mean() for _ in range(resamples)]
    tail = (1 - confidence) / 2 * 100
    return tuple(np.percentile(means, [tail, 100 - tail]))


def test_bootstrap_ci_equals_a_slow_loop_and_is_seeded():
    values = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1]
    ours = bootstrap_ci(values, resamples=500, seed=3)
    assert ours == pytest.approx(_slow_bootstrap(values, 500, 3), abs=0)
    assert bootstrap_ci(values, resamples=500, seed=3) == ours
    assert bootstrap_ci(values, resamples=500, seed=4) != ours


def test_bootstrap_ci_does_not_depend_on_chunking(monkeypatch):
    from polyroute.evaluate import metrics

    values = np.random.default_rng(0).random(37)
    whole = bootstrap_ci(values, resamples=1000, seed=1)
    monkeypatch.setattr(metrics, "_DRAWS_PER_CHUNK", 37 * 7)  # 7 resamples a chunk
    assert bootstrap_ci(values, resamples=1000, seed=1) == whole


def test_bootstrap_ci_agrees_with_scipy_and_the_normal_interval():
    from scipy.stats import bootstrap

    values = np.random.default_rng(7).binomial(1, 0.6, size=400).astype(float)
    low, high = bootstrap_ci(values, resamples=20_000, seed=0)
    ref = bootstrap((values,), np.mean, n_resamples=20_000, method="percentile", random_state=0)
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.006)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.006)
    mean, se = values.mean(), values.std() / math.sqrt(values.size)
    assert low == pytest.approx(mean - 1.96 * se, abs=0.008)
    assert high == pytest.approx(mean + 1.96 * se, abs=0.008)
    assert low < mean < high


def test_bootstrap_ci_edge_cases():
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([1.0] * 9) == (1.0, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 0.0], confidence=95)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_ci([1.0, 0.0], resamples=0)


def test_paired_bootstrap_ci():
    base = np.random.default_rng(2).binomial(1, 0.5, size=200).astype(float)
    assert paired_bootstrap_ci(base, base) == (0.0, 0.0)
    shifted = base + 0.25
    assert paired_bootstrap_ci(shifted, base) == pytest.approx((0.25, 0.25))
    # a variant that fixes 30 of the base's errors: the gain is 0.15 and the paired interval
    # is narrower than the difference of two independent intervals would suggest
    variant = base.copy()
    variant[np.flatnonzero(base == 0)[:30]] = 1.0
    low, high = paired_bootstrap_ci(variant, base, seed=5)
    assert low < 0.15 < high
    assert low > 0
    assert (low, high) == bootstrap_ci(variant - base, seed=5)
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap_ci([1.0, 0.0], [1.0])
