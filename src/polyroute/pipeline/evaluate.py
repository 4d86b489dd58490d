"""Step `evaluate`: one variant of the model on one task, every configured language of it.

Writes ``<out>/<language>.json`` per language (one result schema for every variant x task x
language: model, variant, task, n items, metrics with 95% bootstrap intervals, settings and per-item
records as lm-eval's ``--log_samples``). The files are written into ``<out>.partial/`` and the
directory, its marker (``EVAL_FORMAT``) last, is renamed onto `out` only when every language is done,
so a killed job leaves nothing a rerun would trust; `<out>.lock` keeps a second evaluator of the same
output out, and `out` is replaced only when it holds an earlier evaluation.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from polyroute.atomic import atomic_write_json, check_replaceable, output_lock, provenance, publish_dir, write_marker
from polyroute.errors import UserError
from polyroute.evaluate.tasks import get_task
from polyroute.pipeline.data import read_records

if TYPE_CHECKING:
    from polyroute.evaluate.variants import Variant

log = logging.getLogger(__name__)

__all__ = ["EVAL_FORMAT", "task_settings", "task_items", "evaluate", "evaluate_variant"]

EVAL_FORMAT = "polyroute-eval/1"  # an evaluation directory's marker


def task_settings(evaluation: Mapping[str, Any], task: str) -> dict[str, Any]:
    """A task's run settings: the evaluation block's defaults overridden by the task's own entry."""
    own = dict(evaluation["tasks"][task] or {})
    merged = {key: evaluation[key] for key in ("batch_size", "batch_tokens", "max_new_tokens", "static_cache",
                                                 "bootstrap", "seed", "limit")}
    merged.update({key: own[key] for key in own if key != "languages"})
    merged.setdefault("num_fewshot", 0)
    return merged


def task_items(frame: pd.DataFrame, split: str, limit: int | None) -> list[dict]:
    """The first `limit` records of `split` (all when None), as plain dicts in file order."""
    rows = frame[frame["split"] == split].drop(columns="split")
    if limit is not None:
        rows = rows.head(limit)
    return rows.to_dict(orient="records")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN or inf
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return value


def evaluate(*, model: Mapping[str, Any], variant: Variant, task: str, data: Mapping[str, str | os.PathLike],
             settings: Mapping[str, Any], out: str | os.PathLike, loaded: tuple[Any, Any] | None = None) -> Path:
    """Evaluate `variant` on `task` for every language in `data` (language -> parquet of its records).

    `model` is the config's model block; `loaded` an already loaded (model, tokenizer) to reuse.
    """
    from polyroute.evaluate.runner import EvalSettings  # torch: only where a model runs

    spec = get_task(task)
    options = {k: v for k, v in settings.items() if k != "limit"}
    run_settings = EvalSettings(**options)
    limit = settings.get("limit")
    unsupported = [language for language in data if not spec.supports(language)]
    if unsupported:
        raise UserError(f"task {task} has no items or prompt for {', '.join(unsupported)}")
    frames = {language: read_records(path) for language, path in data.items()}  # fail before loading
    fewshot_split = spec.fewshot_split or spec.test_split
    with output_lock(out):
        check_replaceable(out, EVAL_FORMAT)
        if loaded is None:
            from polyroute.models.loading import load_configured_model

            loaded = load_configured_model(model)
        _run_languages(model, variant, task, spec, frames, settings, run_settings, limit, fewshot_split, loaded, out)
    return Path(out)


def _run_languages(model, variant, task, spec, frames, settings, run_settings, limit, fewshot_split, loaded,
                   out) -> None:
    """Every language into ``<out>.partial/`` (held under the output's lock), then published onto `out`."""
    from polyroute.evaluate.runner import run_task

    net, tokenizer = loaded
    work = Path(f"{out}.partial")
    shutil.rmtree(work, ignore_errors=True)  # a killed run's: the lock says no live writer has it
    work.mkdir(parents=True)
    with variant.applied(net):
        for language, frame in frames.items():
            items = task_items(frame, spec.test_split, limit)
            pool = task_items(frame, fewshot_split, None) if run_settings.num_fewshot else []
            result = run_task(net, tokenizer, spec, items, language=language, pool=pool, settings=run_settings)
            log.info("%s %s %s: %d items, %s", variant.name, task, language, result["n_items"],
                     ", ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items()))
            record = provenance(model=model["id"], model_revision=model.get("revision"), variant=variant.describe(),
                                settings=dict(settings), **result)
            atomic_write_json(work / f"{language}.json", _jsonable(record))
    write_marker(work, {"format": EVAL_FORMAT, "variant": variant.name, "task": task, "languages": list(frames)})
    publish_dir(work, out, EVAL_FORMAT)


def evaluate_variant(*, model: Mapping[str, Any], variant: str, source: str | os.PathLike | None, kind: str,
                     strength: float | None, task: str, data: Mapping[str, str | os.PathLike],
                     settings: Mapping[str, Any], out: str | os.PathLike) -> Path:
    """`evaluate` for a variant given by name and kind: ``base``; ``adapter`` (`source` its directory);
    ``intervention`` (`source` its expert-set file, at `strength`)."""
    from polyroute.evaluate import variants

    if kind == "adapter":
        chosen = variants.adapter_variant(variant, source, model=model)
    elif kind == "intervention":
        chosen = variants.intervention_variant(variant, source, strength)
    elif kind == "base":
        chosen = variants.BASE
    else:
        raise UserError(f"variant kind {kind!r} is none of base, adapter, intervention")
    return evaluate(model=model, variant=chosen, task=task, data=data, settings=settings, out=out)
