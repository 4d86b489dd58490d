"""The work of one GPU job, counted from its data: sequences or items, forward tokens, decode steps.

Records come from the downloaded parquet files (resources/data), else from `datasets.local` (the demo
bundle); before a download only the dataset registry's published split sizes are known, so the items
are counted and the tokens stay unknown. Tokens are exact with the model's tokenizer at hand (a local
checkpoint, or the Hugging Face cache after `download_model`); without it they are bounded by the
text's UTF-8 bytes (+2 special tokens a sequence), which no byte-level or byte-fallback tokenizer exceeds.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from polyroute.data import get_spec

log = logging.getLogger(__name__)

__all__ = ["Work", "DataSource", "routing_work", "eval_work", "train_work", "decode_steps"]


@dataclass(frozen=True)
class Work:
    """What one job computes. `tokens` None: unknown until download_dataset ran; `exact` False: an
    upper bound (no tokenizer at hand). `path` names the throughput figure the tokens run at."""

    path: str  # forward | extract | score | train
    items: int | None
    tokens: int | None
    exact: bool = True
    decode_steps: int = 0  # generation: batches x max_new_tokens
    decode_batch: int = 1

    def __add__(self, other: Work) -> Work:
        if (self.path, self.decode_batch) != (other.path, other.decode_batch):
            raise ValueError(f"cannot add {self.path} work to {other.path} work")
        return Work(self.path, None if None in (self.items, other.items) else self.items + other.items,
                    None if None in (self.tokens, other.tokens) else self.tokens + other.tokens,
                    self.exact and other.exact, self.decode_steps + other.decode_steps, self.decode_batch)


def decode_steps(items: int, batch: int, max_new_tokens: int) -> int:
    """Decode steps of generating for `items` prompts: every batch may run to max_new_tokens."""
    return math.ceil(items / batch) * max_new_tokens


class DataSource:
    """The records and token counts of the run's datasets, as far as they are at hand."""

    def __init__(self, run_config: Mapping[str, Any], data_dir: str | os.PathLike = "resources/data") -> None:
        self.config = run_config
        self.data_dir = Path(data_dir)
        self._frames: dict[tuple[str, str, str], pd.DataFrame | None] = {}
        self._tokenizer: Any = None

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer when it is on this machine, else None (token counts become bounds);
        looked for again while absent: `download_model` may have run since."""
        if self._tokenizer is None:
            self._tokenizer = self._load_tokenizer()
        return self._tokenizer

    def _load_tokenizer(self) -> Any:
        model = self.config["model"]
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(model["id"], revision=model.get("revision"), local_files_only=True,
                                                 trust_remote_code=bool(model.get("trust_remote_code", False)))
        except Exception as e:  # noqa: BLE001 - any reason it is not loadable means "not at hand"
            log.info("no tokenizer of %s at hand (%s): token counts are upper bounds", model["id"], type(e).__name__)
            return None

    def records(self, dataset: str, language: str, split: str) -> pd.DataFrame | None:
        """The records of one split (file order), or None when the data is not on this machine."""
        key = (dataset, language, split)
        if self._frames.get(key) is None:  # absent data is looked for again: a download may have run since
            self._frames[key] = self._read(dataset, language, split)
        return self._frames[key]

    def _read(self, dataset: str, language: str, split: str) -> pd.DataFrame | None:
        path = self.data_dir / dataset / f"{language}.parquet"
        if path.is_file():
            frame = pd.read_parquet(path)
            return frame[frame["split"] == split].drop(columns="split").reset_index(drop=True)
        local = self.config["datasets"].get("local")
        if local is None:
            return None
        from polyroute.data import load_records

        try:
            return load_records(dataset, language, split=split, local_dir=local,
                                max_items=self.config["datasets"].get("max_items"))
        except FileNotFoundError:
            return None

    def published_items(self, dataset: str, split: str) -> int | None:
        """Items per language of a split by the dataset card (None where it varies by language)."""
        sizes = get_spec(dataset).split_sizes or {}
        if split not in sizes:
            return None
        cap = self.config["datasets"].get("max_items")
        return sizes[split] if cap is None else min(cap, sizes[split])

    def count_tokens(self, texts: Sequence[str], max_length: int | None = None) -> tuple[int, bool]:
        """(tokens of `texts`, each truncated to max_length; exact?)."""
        if self.tokenizer is not None:
            lengths = [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
            exact = True
        else:
            lengths = [len(text.encode("utf-8")) + 2 for text in texts]
            exact = False
        if max_length is not None:
            lengths = [min(n, max_length) for n in lengths]
        return sum(lengths), exact

    def count_scored_inputs(self, texts: Sequence[str]) -> tuple[int, bool]:
        """(tokens forwarded to score `texts` = context + continuation each; exact?): as `loglikelihoods`
        runs them, one forward per distinct model input, the text without its last token (so the
        choices " A" .. " D" after one prompt share a forward)."""
        if self.tokenizer is None:
            return sum(len(text.encode("utf-8")) + 2 for text in set(texts)), False
        inputs = {tuple(ids[:-1]) for ids in self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]}
        return sum(len(ids) for ids in inputs), True


def routing_work(data: DataSource, dataset: str, split: str | None, languages: Sequence[str],
                 max_length: int, *, shard: int = 0, shards: int = 1, per_language: int | None = None) -> Work:
    """An extraction job: shard `shard` of `shards` of the dataset's sequences, first `per_language`
    of each language (the same selection as `polyroute.pipeline.routing.extract_routing`)."""
    from polyroute.pipeline.data import record_texts
    from polyroute.routing.shards import interleaved_order, shard_indices

    split = get_spec(dataset).check_split(split)
    frames = [data.records(dataset, language, split) for language in languages]
    if any(frame is None for frame in frames):
        per = data.published_items(dataset, split)
        if per is None:
            return Work("extract", None, None)
        per = per if per_language is None else min(per, per_language)
        part = shard_indices(per * len(languages), shards, shard)
        n = part.stop - part.start
        return Work("extract", n, n * max_length, exact=False)  # at most max_length tokens a sequence
    table = pd.concat(frames, ignore_index=True)
    table = table.iloc[interleaved_order(table["language"].tolist(), table["parallel_id"].tolist())]
    if per_language is not None:
        table = table.groupby("language", sort=False).head(per_language)
    part = table.iloc[shard_indices(len(table), shards, shard)]
    tokens, exact = data.count_tokens(record_texts(part, dataset), max_length)
    return Work("extract", len(part), tokens, exact)


def eval_work(data: DataSource, task_name: str, languages: Sequence[str], settings: Mapping[str, Any]) -> Work:
    """An evaluation job: one task on its languages, with the task's settings (shots, limit, batch,
    max_new_tokens). Choice tasks forward every distinct (prompt, choice) input, generation tasks read
    each prompt and decode up to max_new_tokens per batch, perplexity scores each text."""
    from polyroute.evaluate.tasks import get_task

    task = get_task(task_name)
    total: Work | None = None
    for language in languages:
        part = _eval_language(data, task, language, settings)
        total = part if total is None else total + part
    return total if total is not None else Work("score", 0, 0)


def _eval_language(data: DataSource, task: Any, language: str, settings: Mapping[str, Any]) -> Work:
    from polyroute.evaluate.fewshot import contexts
    from polyroute.pipeline.evaluate import task_items

    batch, limit, shots = int(settings["batch_size"]), settings.get("limit"), int(settings.get("num_fewshot") or 0)
    generate = task.output == "generate"
    path = "forward" if generate else "score"  # a generation's prompt is read by a plain forward (prefill)
    frame = data.records(task.dataset, language, task.test_split)
    pool_frame = data.records(task.dataset, language, task.fewshot_split or task.test_split) if shots else None
    if frame is None or (shots and pool_frame is None):
        n = data.published_items(task.dataset, task.test_split)
        if n is not None and limit is not None:
            n = min(n, limit)
        steps = decode_steps(n, batch, settings["max_new_tokens"]) if generate and n is not None else 0
        return Work(path, n, None, True, steps, batch)
    items = task_items(frame.assign(split=task.test_split), task.test_split, limit)
    if task.output == "perplexity":
        tokens, exact = data.count_tokens([item["text"] for item in items])
        return Work("score", len(items), tokens, exact, 0, batch)
    pool = task_items(pool_frame.assign(split="pool"), "pool", None) if shots else []
    prompts = contexts(task, items, pool, task.code(language), shots)
    if generate:
        tokens, exact = data.count_tokens(prompts)
        return Work(path, len(items), tokens, exact, decode_steps(len(items), batch, settings["max_new_tokens"]),
                    batch)
    texts = [prompt + task.target_delimiter + choice for prompt, item in zip(prompts, items)
             for choice in task.choices(item)]
    tokens, exact = data.count_scored_inputs(texts)
    return Work("score", len(items), tokens, exact, 0, batch)


def train_work(data: DataSource, dataset: str, split: str | None, language: str, training: Mapping[str, Any]) -> Work:
    """A training job: the target language's training text, truncated to max_length, every epoch."""
    from polyroute.pipeline.data import record_texts

    split = get_spec(dataset).check_split(split)
    frame = data.records(dataset, language, split)
    epochs = int(training["epochs"])
    if frame is None:
        n = data.published_items(dataset, split)
        if n is None:
            return Work("train", None, None)
        return Work("train", n * epochs, n * epochs * int(training["max_length"]), exact=False)
    tokens, exact = data.count_tokens(record_texts(frame, dataset), int(training["max_length"]))
    return Work("train", len(frame) * epochs, tokens * epochs, exact)
