"""Record types: the columns every dataset is mapped to, one set per task kind.

Every record has ``id`` (unique within a dataset file), ``language`` (FLORES code) and
``parallel_id`` (same value = translations of one another; ``""`` when the dataset is not
parallel). The remaining columns depend on the kind of task.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = [
    "COMMON_COLUMNS",
    "KIND_COLUMNS",
    "PARALLEL_TEXT",
    "MULTIPLE_CHOICE",
    "NUMERIC_ANSWER",
    "EXTRACTIVE_QA",
    "MINIMAL_PAIR",
    "columns",
    "to_frame",
]

PARALLEL_TEXT = "parallel_text"
MULTIPLE_CHOICE = "multiple_choice"
NUMERIC_ANSWER = "numeric_answer"
EXTRACTIVE_QA = "extractive_qa"
MINIMAL_PAIR = "minimal_pair"

COMMON_COLUMNS: tuple[str, ...] = ("id", "language", "parallel_id")

KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    PARALLEL_TEXT: ("text",),
    # choices: list of 4 str; answer: 0-based index into choices
    MULTIPLE_CHOICE: ("context", "question", "choices", "answer"),
    # answer: the number as written (str); cot: worked solution, "" when the source has none
    NUMERIC_ANSWER: ("question", "answer", "cot"),
    # answers: list of gold answer strings
    EXTRACTIVE_QA: ("context", "question", "answers"),
    MINIMAL_PAIR: ("good", "bad", "phenomenon"),
}


def columns(kind: str) -> tuple[str, ...]:
    """All columns of a record of `kind`, in file order."""
    try:
        return COMMON_COLUMNS + KIND_COLUMNS[kind]
    except KeyError:
        raise ValueError(
            f"unknown record kind {kind!r} (known: {', '.join(KIND_COLUMNS)})"
        ) from None


def to_frame(records: Sequence[dict], kind: str) -> pd.DataFrame:
    """Records -> DataFrame with exactly the kind's columns; checks keys and unique ids."""
    cols = columns(kind)
    for rec in records:
        if set(rec) != set(cols):
            raise ValueError(
                f"record {rec.get('id')!r} has keys {sorted(rec)}, expected {list(cols)}"
            )
    frame = pd.DataFrame.from_records(list(records), columns=list(cols))
    dup = frame["id"][frame["id"].duplicated()]
    if not dup.empty:
        raise ValueError(f"duplicate record id {dup.iloc[0]!r}")
    if kind == MULTIPLE_CHOICE:
        frame["answer"] = frame["answer"].astype("int64")
    return frame
