"""Load a dataset's language split as records, from the Hub or from a local mirror; write parquet."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from polyroute.atomic import atomic_write_bytes
from polyroute.data import records as R
from polyroute.data.registry import DatasetSpec, RowContext, get_spec
from polyroute.errors import UserError

__all__ = ["local_path", "load_records", "download", "write_parquet_atomic"]


def local_path(local_dir: str | os.PathLike, spec: DatasetSpec, language: str, split: str) -> Path:
    """``<local_dir>/<dataset>/<hf_config>/<split>.jsonl``: the Hub layout mirrored as JSON lines."""
    return Path(local_dir) / spec.name / spec.hf_config(language) / f"{split}.jsonl"


def _check_max_items(max_items: int | None) -> None:
    if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int)
                                  or max_items < 1):
        raise ValueError(f"max_items must be a positive integer or None, got {max_items!r}")


def _load_source(spec: DatasetSpec, language: str, split: str, local_dir: str | os.PathLike | None,
                 token: str | None):
    import datasets  # heavy; only needed here

    if local_dir is None:
        # The Hub path users run on clusters; the token matters for gated datasets.
        return datasets.load_dataset(spec.hf_id, spec.hf_config(language), split=split, token=token)
    path = local_path(local_dir, spec, language, split)
    if not path.is_file():
        raise UserError(
            f"no local file {path} for {spec.name}/{language}/{split} "
            f"(expected layout <local_dir>/<dataset>/<hf_config>/<split>.jsonl)"
        )
    check_json_lines(path)
    # Same `datasets` code path as the Hub: a Dataset of rows in the source schema.
    return datasets.load_dataset("json", data_files=str(path), split="train")


def check_json_lines(path: Path) -> None:
    """UserError naming the file (and line) unless every non-blank line is a JSON object and there is one."""
    rows = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise UserError(f"{path}: line {number} is not JSON ({exc}); fix or regenerate the file") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}: line {number} is not a JSON object; fix or regenerate the file")
            rows += 1
    if rows == 0:
        raise UserError(f"{path}: empty (no records); fix or regenerate the file")


def load_records(name: str, language: str, *, split: str | None = None,
                 local_dir: str | os.PathLike | None = None, max_items: int | None = None,
                 token: str | None = None) -> pd.DataFrame:
    """Records of one dataset language split, as a DataFrame with the kind's columns.

    Reads the Hub (``datasets.load_dataset(hf_id, config, split=..., token=...)``) unless
    `local_dir` is given. `token` defaults to ``$HF_TOKEN``. Every argument is checked (unknown
    dataset, language not in the dataset, bad split, bad max_items) before anything is read.
    """
    spec = get_spec(name)
    code = spec.dataset_code(language)  # LanguageNotInDataset before any download
    split = spec.check_split(split)
    _check_max_items(max_items)
    if token is None:
        token = os.environ.get("HF_TOKEN")

    source = _load_source(spec, language, split, local_dir, token)
    out: list[dict] = []
    for row in source:
        if spec.row_filter is not None and not spec.row_filter(row, code):
            continue
        try:
            out.append(spec.convert(row, RowContext(index=len(out), language=language, split=split)))
        except (KeyError, ValueError) as exc:
            problem = f"no field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise UserError(f"{name}/{language}/{split}: record {len(out)} (source {local_dir or spec.hf_id}): {problem}; "
                            "fix the data or its dataset definition") from None
        if max_items is not None and len(out) >= max_items:
            break
    if not out:
        raise ValueError(f"{name}/{language}/{split}: no rows found (dataset code {code!r})")
    return R.to_frame(out, spec.kind)


def write_parquet_atomic(frame: pd.DataFrame, path: str | os.PathLike,
                         metadata: dict[str, Any] | None = None) -> Path:
    """Write `frame` as parquet to `path` atomically (see `polyroute.atomic`).

    `metadata` is stored as JSON under the schema metadata key ``polyroute``. A writer that fails
    leaves no file at `path`, so a killed job never leaves a parquet a rerun would trust.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"polyroute"] = json.dumps(metadata, sort_keys=True, default=str).encode()
        table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()  # serialise fully first: a failure here touches no file
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
    return Path(path)


def download(name: str, language: str, out_path: str | os.PathLike, *, split: str | None = None,
             local_dir: str | os.PathLike | None = None, max_items: int | None = None,
             token: str | None = None) -> Path:
    """Load records (see `load_records`) and write them to `out_path` (``.parquet``) atomically.

    The file's schema metadata key ``polyroute`` holds the provenance (dataset, Hub id, config,
    split, source, max_items).
    """
    out_path = Path(out_path)
    if out_path.suffix != ".parquet":
        raise ValueError(f"out_path must end in .parquet, got {str(out_path)!r}")
    spec = get_spec(name)
    split = spec.check_split(split)
    frame = load_records(name, language, split=split, local_dir=local_dir,
                         max_items=max_items, token=token)
    meta = {"dataset": name, "hf_id": spec.hf_id, "config": spec.hf_config(language),
            "split": split, "language": language, "kind": spec.kind,
            "source": "local" if local_dir is not None else "hub", "max_items": max_items,
            "rows": len(frame)}
    return write_parquet_atomic(frame, out_path, meta)
