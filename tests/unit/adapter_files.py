"""Test helper: a finished adapter directory as training leaves it (delta with its base record, marker)."""

from __future__ import annotations

from pathlib import Path

from polyroute.atomic import write_marker
from polyroute.train.artifacts import ADAPTER_FORMAT, DELTA_FILE, base_record, save_delta


def finished_adapter(directory: Path, model, model_id, deltas: dict, revision: str | None = None) -> Path:
    """Write `deltas` ({name: (rows, delta)}) trained on `model` (called `model_id`) as an adapter at `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    save_delta(directory / DELTA_FILE, deltas, base_record(model, model_id, revision, deltas))
    write_marker(directory, {"format": ADAPTER_FORMAT, "steps": 1})
    return directory
