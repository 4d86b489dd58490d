"""Evaluation tasks: one small declarative definition each, in the spirit of lm-evaluation-harness.

Prompts, few-shot sampling, delimiters and stop sequences follow the harness' task files (0.4.x:
``belebele``, ``mgsm_direct_<xx>``, ``mgsm_native_cot_<xx>``, ``tydiqa_goldp_<xx>``,
``multiblimp_<xxx>``), so the same model on the same items gives the harness' numbers. Records are
the project's (`polyroute.data.records`); each task says how a record maps to the harness' document
fields. PolyMath and perplexity have no harness task: see their definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from polyroute import languages
from polyroute.evaluate import answers, metrics

__all__ = ["Task", "TASKS", "get_task", "MGSM_WORDS", "TYDIQA_WORDS", "POLYMATH_INSTRUCTIONS"]

Row = Mapping[str, Any]
# a generation's item scores, the gold answer, and the filtered predictions (filter name -> text)
Scored = tuple[dict[str, float], Any, dict[str, str]]

# MGSM prompt words per ISO 639-1 code (the harness' tasks/mgsm/utils.py LANGUAGES table):
# question prefix, native chain-of-thought answer prefix, direct answer prefix.
MGSM_WORDS: dict[str, tuple[str, str, str]] = {
    "bn": ("প্রশ্ন:", "ধাপে ধাপে উত্তর:", "Answer:"),
    "de": ("Frage:", "Schritt-für-Schritt-Antwort:", "Antwort:"),
    "en": ("Question:", "Step-by-Step Answer:", "Answer:"),
    "es": ("Pregunta:", "Respuesta paso a paso:", "Respuesta:"),
    "fr": ("Question :", "Réponse étape par étape :", "Réponse :"),
    "ru": ("Задача:", "Пошаговоерешение:", "Answer:"),
    "sw": ("Swali:", "Jibu la Hatua kwa Hatua:", "Answer:"),
    "te": ("ప్రశ్న:", "దశలవారీగా సమాధానం:", "Answer:"),
    "th": ("โจทย์:", "คำตอบทีละขั้นตอน:", "Answer:"),
    "ja": ("問題：", "ステップごとの答え:", "Answer:"),
    "zh": ("问题：", "逐步解答:", "Answer:"),
}

# TyDiQA-GoldP prompt words per language (the harness' tasks/tydiqa/tydiqa_goldp_<xx>.yaml):
# context, question and answer labels; English labels for languages the harness lacks.
TYDIQA_WORDS: dict[str, tuple[str, str, str]] = {
    "en": ("Context", "Question", "Answer"),
    "ar": ("السياق", "السؤال", "الإجابة"),
    "bn": ("প্রসঙ্গ", "প্রশ্ন", "উত্তর"),
    "fi": ("Konteksti", "Kysymys", "Vastaus"),
    "id": ("Konteks", "Pertanyaan", "Jawaban"),
    "ko": ("맥락", "질문", "답변"),
    "ru": ("Контекст", "Вопрос", "Ответ"),
    "sw": ("Muktadha", "Swali", "Jibu"),
    "te": ("సందర్భం", "ప్రశ్న", "సమాధానం"),
}


# PolyMath's answer instruction per language (the PolyMath paper, Figure 8), appended after the
# problem with a blank line between, as the authors' protocol does.
POLYMATH_INSTRUCTIONS: dict[str, str] = {
    "en": r"Note: Please put the final answer in the $\boxed{}$.",
    "zh": r"注意：请将最终答案放在 $\boxed{}$ 中。",
    "ar": r"ملاحظة: يُرجى وضع الإجابة النهائية في $\boxed{}$.",
    "bn": r"বিঃদ্রঃ: অনুগ্রহ করে চূড়ান্ত উত্তরটি $\boxed{}$ এর মধ্যে রাখুন।",
    "de": r"Hinweis: Bitte setzen Sie die endgültige Antwort in $\boxed{}$.",
    "es": r"Nota: Por favor, coloque la respuesta final en el $\boxed{}$.",
    "fr": r"Remarque : Veuillez mettre la réponse finale dans le $\boxed{}$.",
    "id": r"Catatan: Silakan letakkan jawaban akhir di dalam $\boxed{}$.",
    "it": r"Nota: Per favore, metti la risposta finale nel $\boxed{}$.",
    "ja": r"注意：最終的な答えを $\boxed{}$ に入れてください。",
    "ko": r"참고: 최종 답안을 $\boxed{}$ 안에 넣어 주세요.",
    "ms": r"Nota: Sila letakkan jawapan akhir dalam $\boxed{}$.",
    "pt": r"Nota: Por favor, coloque a resposta final no $\boxed{}$.",
    "ru": r"Примечание: Пожалуйста, поместите окончательный ответ в $\boxed{}$.",
    "sw": r"Kumbuka: Tafadhali weka jibu la mwisho katika $\boxed{}$.",
    "te": r"గమనిక: దయచేసి తుది జవాబును $\boxed{}$ లో ఉంచండి.",
    "th": r"หมายเหตุ: กรุณาใส่คำตอบสุดท้ายใน $\boxed{}$.",
    "vi": r"Lưu ý: Vui lòng đặt câu trả lời cuối cùng trong $\boxed{}$.",
}


@dataclass(frozen=True)
class Task:
    """One evaluation task.

    `output` is ``choice`` (log-likelihood of each choice after the prompt), ``generate`` (greedy
    generation until a stop sequence) or ``perplexity`` (log-likelihood of the whole text).
    `prompt(row, code)` and `target(row, code)` are the harness' doc_to_text / doc_to_target,
    `code` the dataset's language code; `choices(row)` the continuations of a choice task and
    `gold(row)` the index of the right one; `score(generation, row, language)` the item scores of
    a generation task (the harness' filters and process_results).
    """

    name: str
    dataset: str
    output: str
    test_split: str
    prompt: Callable[[Row, str], str]
    harness: Callable[[str], str | None]  # the harness task name for a dataset code, None = none
    target: Callable[[Row, str], str] | None = None
    choices: Callable[[Row], list[str]] | None = None
    gold: Callable[[Row], int] | None = None
    until: Callable[[str], list[str]] = lambda code: ["\n"]
    score: Callable[[str, Row, str], Scored] | None = None
    fewshot_split: str | None = None  # None: the test split (then the item itself is never a shot)
    fewshot_sampler: str = "random"  # random (seeded, as the harness) | first_n
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    language_codes: tuple[str, ...] | None = None  # dataset codes with prompts; None = all
    consistency: bool = False  # report language consistency of the generations
    metrics: tuple[str, ...] = field(default=())
    primary: str = ""  # the metric gains are reported in; "" = the first of `metrics`
    higher_is_better: bool = True

    @property
    def main_metric(self) -> str:
        return self.primary or self.metrics[0]

    def supports(self, language: str) -> bool:
        """Whether the task has items and a prompt for FLORES language `language`."""
        if language not in languages.dataset_languages(self.dataset):
            return False
        return self.language_codes is None or self.code(language) in self.language_codes

    def code(self, language: str) -> str:
        """The code the task's prompt tables use: the dataset's, or ISO 639-1 for TyDiQA, whose
        codes are English language names."""
        if self.dataset == "tydiqa":
            return languages.iso639_1(language) or languages.to_dataset_code(language, self.dataset)
        return languages.to_dataset_code(language, self.dataset)


def _belebele_prompt(row: Row, code: str) -> str:
    c = row["choices"]
    return (f"P: {row['context']}\nQ: {row['question'].strip()}\nA: {c[0]}\nB: {c[1]}\nC: {c[2]}\n"
            f"D: {c[3]}\nAnswer:")


def _mgsm_prompt(answer_word: int) -> Callable[[Row, str], str]:
    def prompt(row: Row, code: str) -> str:
        question, cot, direct = MGSM_WORDS[code]
        word = (question, cot, direct)[answer_word]
        # exemplars (train split, with a worked answer) carry their own "Question:" prefix in the data
        if row["cot"]:
            return f"{row['question']}\n{word}"
        return f"{question} {row['question']}\n{word}"
    return prompt


def _mgsm_cot_target(row: Row, code: str) -> str:
    if row["cot"]:
        return row["cot"][len(MGSM_WORDS[code][1]) + 1:]  # the worked answer after its prefix
    return row["answer"]


def _mgsm_until(code: str) -> list[str]:
    return [MGSM_WORDS[code][0], "</s>", "<|im_end|>"]


def _tydiqa_prompt(row: Row, code: str) -> str:
    context, question, answer = TYDIQA_WORDS.get(code, TYDIQA_WORDS["en"])
    return f"{context}: {row['context']}\n\n{question}: {row['question']}\n\n{answer}:"


def _polymath_prompt(row: Row, code: str) -> str:
    return f"{row['question']}\n\n{POLYMATH_INSTRUCTIONS[code]}"


def _mgsm_score(filters: Callable[[str, str], dict[str, str]]) -> Callable[[str, Row, str], Scored]:
    def score(generation: str, row: Row, language: str) -> Scored:
        filtered = filters(generation, language)
        scores = {f"exact_match,{name}": answers.mgsm_exact_match(prediction, row["answer"])
                  for name, prediction in filtered.items()}
        return scores, row["answer"], filtered
    return score


def _tydiqa_score(generation: str, row: Row, language: str) -> Scored:
    golds = list(row["answers"])
    return metrics.qa_scores(generation, golds, language), golds, {"none": generation.strip()}


def _polymath_score(generation: str, row: Row, language: str) -> Scored:
    extracted = answers.polymath_extract(generation)
    correct = answers.polymath_equal(extracted, row["answer"])
    return {"accuracy": float(correct)}, row["answer"], {"boxed": extracted or ""}


def _harness(prefix: str, codes: Callable[[str], str] = lambda c: c) -> Callable[[str], str | None]:
    return lambda code: f"{prefix}{codes(code)}"


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("belebele", "belebele", "choice", "test", _belebele_prompt, harness=_harness("belebele_"),
         choices=lambda row: ["A", "B", "C", "D"], gold=lambda row: int(row["answer"]),
         target=lambda row, code: "ABCD"[int(row["answer"])], fewshot_sampler="first_n",
         metrics=("acc", "acc_norm")),
    Task("mgsm_direct", "mgsm", "generate", "test", _mgsm_prompt(2), harness=_harness("mgsm_direct_"),
         target=lambda row, code: row["answer"], until=_mgsm_until, fewshot_split="train",
         score=_mgsm_score(lambda generation, language: answers.mgsm_direct_predictions(generation)),
         target_delimiter="", language_codes=tuple(MGSM_WORDS),
         metrics=("exact_match,remove_whitespace", "exact_match,flexible-extract"),
         primary="exact_match,flexible-extract"),
    Task("mgsm_native_cot", "mgsm", "generate", "test", _mgsm_prompt(1), harness=_harness("mgsm_native_cot_"),
         target=_mgsm_cot_target, until=_mgsm_until, fewshot_split="train", language_codes=tuple(MGSM_WORDS),
         score=_mgsm_score(answers.mgsm_native_cot_predictions),
         consistency=True, metrics=("exact_match,strict-match", "exact_match,flexible-extract"),
         primary="exact_match,flexible-extract"),
    Task("tydiqa", "tydiqa", "generate", "validation", _tydiqa_prompt, harness=_harness("tydiqa_goldp_"),
         target=lambda row, code: row["answers"][0], fewshot_split="train", score=_tydiqa_score,
         metrics=("exact_match", "f1"),
         primary="f1"),
    Task("multiblimp", "multiblimp", "choice", "train", lambda row, code: "", harness=_harness("multiblimp_"),
         choices=lambda row: [row["good"], row["bad"]], gold=lambda row: 0, target_delimiter="",
         metrics=("acc", "acc_norm")),
    Task("polymath", "polymath", "generate", "low", _polymath_prompt, harness=lambda code: None,
         until=lambda code: [], score=_polymath_score, language_codes=tuple(POLYMATH_INSTRUCTIONS),
         consistency=True, metrics=("accuracy",)),
    Task("perplexity", "flores_plus", "perplexity", "devtest", lambda row, code: "", harness=lambda code: None,
         metrics=("bits_per_byte", "byte_perplexity", "word_perplexity", "token_perplexity"),
         higher_is_better=False),
)}


def get_task(name: str) -> Task:
    """The task called `name` (a one-line ValueError listing the known tasks otherwise)."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown evaluation task {name!r} (known: {', '.join(TASKS)})") from None
