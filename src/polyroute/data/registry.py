"""Dataset registry: where each dataset lives on the Hub, its configs, splits and fields.

Each `DatasetSpec` keeps every quirk of its source (field names, answer index base, id
prefixes, how translations are linked) in its `convert` function and `row_filter`, so the
rest of the project only ever sees the record columns of `polyroute.data.records`.

Source schemas (from the dataset cards):

- flores_plus ``openlanguagedata/flores_plus`` (gated): config per language (FLORES+ codes),
  splits ``dev`` (997) / ``devtest`` (1012); fields ``id`` (int, same across languages),
  ``iso_639_3``, ``iso_15924``, ``glottocode``, ``text``, ``url``, ``domain``, ``topic``,
  ``has_image``, ``has_hyperlink``, ``last_updated``.
- belebele ``facebook/belebele``: config per FLORES code, split ``test`` (900); fields ``link``,
  ``question_number`` (int), ``flores_passage``, ``question``, ``mc_answer1``..``mc_answer4``,
  ``correct_answer_num`` (str, 1-based), ``dialect``, ``ds``.
- mgsm ``juletxara/mgsm``: config per ISO 639-1 code, splits ``train`` (8 exemplars, with
  worked ``answer``) / ``test`` (250, ``answer`` null); fields ``question``, ``answer``,
  ``answer_number`` (int), ``equation_solution``. Rows are in the same order in every language.
- tydiqa ``google-research-datasets/tydiqa``, config ``secondary_task`` (GoldP), splits
  ``train`` / ``validation``; fields ``id`` (``<english name>-<digits>-<n>``), ``title``,
  ``context``, ``question``, ``answers`` ({``text``: [str], ``answer_start``: [int]}).
  All languages share one config: rows are selected by their ``id`` prefix.
- polymath ``Qwen/PolyMath``: config per ISO 639-1 code, splits ``top`` / ``high`` /
  ``medium`` / ``low`` (125 each); fields ``id``, ``question``, ``answer``. Rows are in the
  same order in every language.
- multiblimp ``jumelet/multiblimp``: config per ISO 639-3 code (one ``data.tsv`` each), split
  ``train``; fields ``sen`` (grammatical), ``wrong_sen`` (ungrammatical), ``phenomenon``,
  ``lang`` and more annotation columns. Not parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from polyroute import languages
from polyroute.data import records as R

__all__ = ["RowContext", "DatasetSpec", "DATASETS", "get_spec"]


@dataclass(frozen=True)
class RowContext:
    """Where a source row sits: its position in the (language-filtered) split."""

    index: int
    language: str  # FLORES code
    split: str


Row = Mapping[str, Any]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: Hub location, configs, splits, fields and the mapping to records."""

    name: str
    hf_id: str
    kind: str
    splits: tuple[str, ...]
    default_split: str
    fields: tuple[str, ...]  # source fields `convert` reads
    convert: Callable[[Row, RowContext], dict]
    shared_config: str | None = None  # one config for all languages (rows filtered)
    row_filter: Callable[[Row, str], bool] | None = None  # (row, dataset language code)
    gated: bool = False
    notes: str = ""
    # items per language of the splits whose size is the same in every language (the dataset card's),
    # for sizing jobs before a download; splits that vary by language are absent
    split_sizes: Mapping[str, int] | None = None

    @property
    def languages(self) -> list[str]:
        """FLORES codes this dataset has."""
        return languages.dataset_languages(self.name)

    def dataset_code(self, language: str) -> str:
        """The dataset's code for `language` (raises LanguageNotInDataset)."""
        return languages.to_dataset_code(language, self.name)

    def hf_config(self, language: str) -> str:
        """The Hub config name holding `language`."""
        code = self.dataset_code(language)
        return self.shared_config or code

    def check_split(self, split: str | None) -> str:
        """`split` or the default; a one-line error for a split the dataset lacks."""
        split = self.default_split if split is None else split
        if split not in self.splits:
            raise ValueError(
                f"dataset '{self.name}' has no split {split!r} (splits: {', '.join(self.splits)})"
            )
        return split


def _require(row: Row, fields: tuple[str, ...], dataset: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise ValueError(
            f"{dataset} row lacks field(s) {missing}; has {sorted(row)} (schema changed?)"
        )


def _number_str(value: Any) -> str:
    """A gold number as text: ints stay ints (``12.0`` -> ``12``), strings pass through."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _base(ctx: RowContext, local_id: str, parallel_id: str) -> dict:
    return {"id": f"{ctx.language}:{local_id}", "language": ctx.language, "parallel_id": parallel_id}


# --- converters: one per source schema ---------------------------------------------------------

def _flores(row: Row, ctx: RowContext) -> dict:
    pid = f"{ctx.split}-{row['id']}"  # FLORES sentence ids are shared across languages
    return {**_base(ctx, pid, pid), "text": row["text"]}


def _belebele(row: Row, ctx: RowContext) -> dict:
    pid = f"{row['link']}#{row['question_number']}"  # passage link + question number
    answer = int(row["correct_answer_num"]) - 1  # source is 1-based
    if not 0 <= answer < 4:
        raise ValueError(f"belebele row {pid!r}: correct_answer_num {row['correct_answer_num']!r} not in 1..4")
    choices = [row[f"mc_answer{i}"] for i in range(1, 5)]
    return {**_base(ctx, pid, pid), "context": row["flores_passage"],
            "question": row["question"], "choices": choices, "answer": answer}


def _mgsm(row: Row, ctx: RowContext) -> dict:
    pid = f"{ctx.split}-{ctx.index}"  # same row order in every language
    return {**_base(ctx, pid, pid), "question": row["question"],
            "answer": _number_str(row["answer_number"]), "cot": row.get("answer") or ""}


def _tydiqa(row: Row, ctx: RowContext) -> dict:
    return {"id": row["id"], "language": ctx.language, "parallel_id": "",
            "context": row["context"], "question": row["question"],
            "answers": [str(a) for a in row["answers"]["text"]]}


def _tydiqa_filter(row: Row, dataset_code: str) -> bool:
    return str(row["id"]).startswith(dataset_code + "-")


def _polymath(row: Row, ctx: RowContext) -> dict:
    pid = f"{ctx.split}-{ctx.index}"  # same row order in every language
    return {**_base(ctx, f"{ctx.split}-{row['id']}", pid), "question": row["question"],
            "answer": _number_str(row["answer"]), "cot": ""}


def _multiblimp(row: Row, ctx: RowContext) -> dict:
    return {**_base(ctx, f"{ctx.split}-{ctx.index}", ""), "good": row["sen"],
            "bad": row["wrong_sen"], "phenomenon": str(row.get("phenomenon") or "")}


def _checked(convert: Callable[[Row, RowContext], dict], fields: tuple[str, ...], name: str):
    def run(row: Row, ctx: RowContext) -> dict:
        _require(row, fields, name)
        return convert(row, ctx)
    return run


def _spec(name: str, fields: tuple[str, ...], convert, **kw) -> DatasetSpec:
    return DatasetSpec(name=name, fields=fields, convert=_checked(convert, fields, name), **kw)


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        _spec("flores_plus", ("id", "text"), _flores, hf_id="openlanguagedata/flores_plus",
              kind=R.PARALLEL_TEXT, splits=("dev", "devtest"), default_split="dev", gated=True,
              split_sizes={"dev": 997, "devtest": 1012},
              notes="gated: accept the terms on the Hub and set HF_TOKEN"),
        _spec("belebele", ("link", "question_number", "flores_passage", "question", "mc_answer1",
                           "mc_answer2", "mc_answer3", "mc_answer4", "correct_answer_num"),
              _belebele, hf_id="facebook/belebele", kind=R.MULTIPLE_CHOICE, splits=("test",),
              default_split="test", split_sizes={"test": 900}),
        _spec("mgsm", ("question", "answer_number"), _mgsm, hf_id="juletxara/mgsm",
              kind=R.NUMERIC_ANSWER, splits=("train", "test"), default_split="test",
              split_sizes={"train": 8, "test": 250}),
        _spec("tydiqa", ("id", "context", "question", "answers"), _tydiqa,
              hf_id="google-research-datasets/tydiqa", kind=R.EXTRACTIVE_QA,
              splits=("train", "validation"), default_split="validation",
              shared_config="secondary_task", row_filter=_tydiqa_filter),
        _spec("polymath", ("id", "question", "answer"), _polymath, hf_id="Qwen/PolyMath",
              kind=R.NUMERIC_ANSWER, splits=("top", "high", "medium", "low"),
              default_split="low", split_sizes={"top": 125, "high": 125, "medium": 125, "low": 125}),
        _spec("multiblimp", ("sen", "wrong_sen", "phenomenon"), _multiblimp,
              hf_id="jumelet/multiblimp", kind=R.MINIMAL_PAIR, splits=("train",),
              default_split="train"),
    )
}


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset `name` (a one-line ValueError listing known names otherwise)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r} (known: {', '.join(sorted(DATASETS))})"
        ) from None
