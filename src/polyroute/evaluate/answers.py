"""Answer extraction from generations: MGSM as lm-evaluation-harness 0.4.13, PolyMath as its authors.

MGSM (harness ``tasks/mgsm``): each task keeps several filtered predictions, named as the
harness names its filters (they appear as ``exact_match,<filter>`` in its results):

- direct (``direct/direct_yaml``): ``remove_whitespace`` (the stripped generation, then
  ``take_first``) and ``flexible-extract``;
- native CoT (``native_cot/*.yaml``, generated from ``utils.py``'s ``LANGUAGES`` table):
  ``strict-match`` (the language's "The answer is N" regex, first match) and
  ``flexible-extract``.

``flexible-extract`` is the regex ``(-?[$0-9.,]{2,})|(-?[0-9]+)`` with ``group_select: -1``:
the *last* match; a match is a tuple of the two groups, of which the first non-empty one is
kept, then stripped; no match gives ``"[invalid]"``. So ``"costs $5."`` gives ``"$5."`` and
``"1,234."`` stays ``"1,234."``: the harness does not clean numbers here. Its exact match
(``ignore_case`` and ``ignore_punctuation``, ASCII punctuation) then compares ``"5"`` with
``"5"`` and ``"1234"`` with ``"1234"``; and since ``-`` is punctuation too, ``"-5"`` equals a
gold ``5``. `mgsm_exact_match` applies that comparison to the gold ``answer_number``.

PolyMath: lm-evaluation-harness has no PolyMath task, so this follows the authors' own scorer,
github.com/QwenLM/PolyMath at commit fbf4e41 (``eval/run_eval.py`` and ``eval/scripts.py``):

- extraction (``run_eval.py::extract_boxed_content``): delete every ASCII space, find each
  ``boxed{``, take the brace-balanced content, and use the *first* complete one (None if none);
- equivalence (``scripts.py::math_equal(extracted, answer)``), these branches in this order:
  None is wrong; equal after ``strip().lower()``; if both parse as numbers (commas deleted,
  ``float``, or a trailing ``%`` / ``\\%`` divided by 100) they are equal when
  ``math.isclose(r, p, rel_tol=1e-4)`` for r in (ref/100, ref, ref*100), else wrong; an empty
  prediction is wrong; equal after stripping one pair of outer brackets (when the other side
  does not open with the other bracket kind) and deleting all ``{}()``; bracketed tuples
  compare element-wise (recursively); a one-sided ``x = v`` (left side at most 2 characters)
  compares ``v``.
- not reproduced: the multiple-choice letter branch (PolyMath has no choice items) and the
  authors' last branches: sympy symbolic equivalence (LaTeX parsed by sympy's ANTLR parser and
  a bundled latex2sympy, run in a subprocess with a 1 s timeout), the two-sided equation
  comparison built on it, and matrix comparison. The demo's PolyMath answers are integers,
  where the numeric branch decides; on the real data's LaTeX answers (``\\frac{5}{4}``) a
  prediction that only sympy could equate (``1.25``, ``5/4``) counts as wrong here where the
  authors' scorer may count it right. "May", because their 1 s timeout makes the verdict depend
  on machine load: on this 2-core machine under load, their ``math_equal("\\frac{782}{2}",
  "391")`` came out False with their default and True with ``timeout=False``.

Checked against the authors' code (their ``eval/`` run with sympy 1.12.1, antlr4 4.11.0 as
their requirements pin): the same extraction on 9 generations and the same verdict on 32
prediction/reference pairs, the ones in ``tests/unit/test_eval_metrics.py`` among them.
"""

from __future__ import annotations

import math
import re

from polyroute.evaluate.metrics import exact_match
from polyroute.languages import to_dataset_code

__all__ = [
    "INVALID",
    "FLEXIBLE_NUMBER",
    "MGSM_ANSWER_REGEX",
    "regex_extract",
    "mgsm_direct_predictions",
    "mgsm_native_cot_predictions",
    "mgsm_exact_match",
    "polymath_extract",
    "polymath_equal",
]

INVALID = "[invalid]"
FLEXIBLE_NUMBER = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"

# The harness' native-CoT "strict-match" regexes (tasks/mgsm/utils.py LANGUAGES[...]["REGEX"]),
# keyed by MGSM's own language codes.
MGSM_ANSWER_REGEX: dict[str, str] = {
    "bn": r"The answer is (\-?[0-9\.\,]+)",
    "de": r"Die Antwort lautet (\-?[0-9\.\,]+)",
    "en": r"The answer is (\-?[0-9\.\,]+)",
    "es": r"La respuesta es (\-?[0-9\.\,]+)",
    "fr": r"La réponse est (\-?[0-9\.\,]+)",
    "ru": r"Ответ — (\-?[0-9\.\,]+)",
    "sw": r"Jibu ni (\-?[0-9\.\,]+)",
    "te": r"సమాధానం (\-?[0-9\.\,]+)",
    "th": r"คำตอบคือ (\-?[0-9\.\,]+)",
    "ja": r"答えは(\-?[0-9\.\,]+)です。",
    "zh": r"答案是 (\-?[0-9\.\,]+)。",
}

_FLEXIBLE = re.compile(FLEXIBLE_NUMBER)
_STRICT = {code: re.compile(pattern) for code, pattern in MGSM_ANSWER_REGEX.items()}


def regex_extract(
    text: str, pattern: str | re.Pattern[str], group_select: int = 0, fallback: str = INVALID
) -> str:
    """The harness' ``regex`` filter on one response.

    ``findall`` picks match number `group_select` (negative counts from the end); a match with
    several groups is a tuple, of which the first non-empty group is kept (all empty gives
    `fallback`); the result is stripped. No match at all gives `fallback`.
    """
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    matches = regex.findall(text)
    if not matches:
        return fallback
    match = matches[group_select]
    if isinstance(match, tuple):
        groups = [group for group in match if group]
        if not groups:
            return fallback
        match = groups[0]
    return match.strip()


def mgsm_direct_predictions(generation: str) -> dict[str, str]:
    """Filtered predictions of the harness' ``mgsm_direct_<lang>`` tasks, by filter name."""
    return {
        "remove_whitespace": generation.strip(),
        "flexible-extract": regex_extract(generation, _FLEXIBLE, group_select=-1),
    }


def mgsm_native_cot_predictions(generation: str, language: str) -> dict[str, str]:
    """Filtered predictions of ``mgsm_native_cot_<lang>`` for FLORES `language`, by filter name."""
    strict = _STRICT[to_dataset_code(language, "mgsm")]
    return {
        "strict-match": regex_extract(generation, strict),
        "flexible-extract": regex_extract(generation, _FLEXIBLE, group_select=-1),
    }


def mgsm_exact_match(prediction: str, answer_number: int | float) -> float:
    """The MGSM tasks' metric: exact match ignoring case and ASCII punctuation vs ``str(gold)``.

    The gold is the dataset's ``answer_number`` rendered as the harness' ``|string`` does.
    """
    return exact_match(prediction, str(answer_number), ignore_case=True, ignore_punctuation=True)


# --- PolyMath ----------------------------------------------------------------------------------

_BOXED = re.compile(r"boxed{")


def polymath_extract(generation: str) -> str | None:
    """Content of the first complete ``\\boxed{...}`` after deleting spaces; None if there is none."""
    text = generation.replace(" ", "")
    for match in _BOXED.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth > 0:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            return text[match.end() : i - 1]
    return None


def _parse_number(text: str) -> float | None:
    """PolyMath's ``parse_digits``: commas deleted, then float, or a percentage / 100."""
    text = text.replace(",", "")
    try:
        return float(text)
    except ValueError:
        pass
    if text.endswith("%"):
        text = text[:-1].removesuffix("\\")
        try:
            return float(text) / 100
        except ValueError:
            pass
    return None


_TUPLE = re.compile(r"(\(|\[).+(\)|\])")


def polymath_equal(prediction: str | None, reference: str) -> bool:
    """PolyMath's ``math_equal(prediction, reference)`` without its sympy branches (see module doc)."""
    if prediction is None:
        return False
    if prediction.strip().lower() == reference.strip().lower():
        return True
    pred_number, ref_number = _parse_number(prediction), _parse_number(reference)
    if pred_number is not None and ref_number is not None:
        # percent forms: the model may answer 0.25 or 25 for a gold "25%"
        return any(
            math.isclose(candidate, pred_number, rel_tol=1e-4)
            for candidate in (ref_number / 100, ref_number, ref_number * 100)
        )
    if not prediction:
        return False
    prediction, reference = prediction.strip(), reference.strip()
    pred_bare, ref_bare = _without_brackets(prediction, reference)
    if pred_bare.lower() == ref_bare.lower():
        return True
    if _TUPLE.match(prediction) and _TUPLE.match(reference):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
            polymath_equal(p, r) for p, r in zip(pred_parts, ref_parts)
        ):
            return True
    if prediction.count("=") == 1 and reference.count("=") == 1:
        return False  # the authors decide this case symbolically only (not reproduced)
    if prediction.count("=") == 1 and len(prediction.split("=")[0].strip()) <= 2 and "=" not in reference:
        return polymath_equal(prediction.split("=")[1], reference)
    if reference.count("=") == 1 and len(reference.split("=")[0].strip()) <= 2 and "=" not in prediction:
        return polymath_equal(prediction, reference.split("=")[1])
    return False


def _without_brackets(prediction: str, reference: str) -> tuple[str, str]:
    """Both sides without one outer bracket pair (unless the kinds clash) and without {}()."""
    if (
        prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")
    ) or (
        prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")
    ):
        prediction, reference = prediction.strip("[]()"), reference.strip("[]()")
    drop = str.maketrans("", "", "{}()")
    return prediction.translate(drop), reference.translate(drop)
