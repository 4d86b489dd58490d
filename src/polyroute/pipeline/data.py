"""Step `download_dataset`: one parquet of records per dataset and language, all needed splits."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from polyroute.data import get_spec, load_records, write_parquet_atomic
from polyroute.errors import UserError

log = logging.getLogger(__name__)


def download_dataset(
    dataset: str,
    language: str,
    out: str | os.PathLike,
    *,
    splits: Sequence[str | None] = (None,),
    local_dir: str | os.PathLike | None = None,
    max_items: int | None = None,
) -> Path:
    """Records of every requested split (None = the dataset's default split) in one parquet, with a
    `split` column; from the hub, or from `local_dir` laid out like the hub."""
    import datasets

    spec = get_spec(dataset)
    names = [spec.check_split(split) for split in splits]  # bad split -> error before any download
    datasets.disable_progress_bars()  # per-file bars drown the job's log
    frames = []
    for split in dict.fromkeys(names):
        frame = load_records(dataset, language, split=split, local_dir=local_dir, max_items=max_items)
        log.info("%s %s %s: %d records (%s)", dataset, language, split, len(frame), local_dir or "hub")
        frames.append(frame.assign(split=split))
    table = pd.concat(frames, ignore_index=True)
    return write_parquet_atomic(
        table, out, metadata={"dataset": dataset, "language": language, "splits": list(dict.fromkeys(names)),
                              "source": str(local_dir) if local_dir else spec.hf_id}
    )


def read_records(path: str | os.PathLike) -> pd.DataFrame:
    """The records of one language's parquet file; UserError naming the file when it is missing, unreadable or empty."""
    if not Path(path).is_file():
        raise UserError(f"no data file at {path}; run download_dataset for it first")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise UserError(f"{path}: not a readable parquet file ({type(exc).__name__}: {exc}); delete it and rerun "
                        "download_dataset") from None
    if frame.empty or "split" not in frame.columns:
        raise UserError(f"{path}: {'no records' if frame.empty else 'no split column'}; delete it and rerun download_dataset")
    return frame


def read_split(paths: Sequence[str | os.PathLike], split: str | None, dataset: str,
               languages: Sequence[str] | None = None) -> pd.DataFrame:
    """The records of one split from the parquet files of several languages, in the given order.

    With `languages`, each of them must have records in that split (UserError naming the first that has none)."""
    name = get_spec(dataset).check_split(split)
    frames = [read_records(path) for path in paths]
    table = pd.concat(frames, ignore_index=True)
    table = table[table["split"] == name].reset_index(drop=True)
    present = set(table["language"]) if "language" in table else set()
    for language in languages or ():
        if language not in present:
            raise UserError(f"language {language} has no records in split {name!r} of {dataset} ({', '.join(map(str, paths))}); "
                            "remove it from the config's languages or fix its data file")
    return table


def record_texts(frame: pd.DataFrame, dataset: str) -> list[str]:
    """The text of each record that is routed or trained on: the sentence of parallel text, the
    passage and question of reading tasks, the question of math tasks, the good sentence of a pair."""
    from polyroute.data import records as kinds

    kind = get_spec(dataset).kind
    if kind == kinds.PARALLEL_TEXT:
        return frame["text"].tolist()
    if kind in (kinds.MULTIPLE_CHOICE, kinds.EXTRACTIVE_QA):
        return (frame["context"] + "\n" + frame["question"]).tolist()
    if kind == kinds.NUMERIC_ANSWER:
        return frame["question"].tolist()
    if kind == kinds.MINIMAL_PAIR:
        return frame["good"].tolist()
    raise UserError(f"dataset {dataset!r} has record kind {kind!r}, which has no text to route")
