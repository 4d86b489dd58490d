"""The subnetwork file (DESIGN.md contract): validation, atomic JSON writing and reading."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polyroute.errors import UserError
from polyroute.models.info import ModelInfo

KEYS = (
    "method",
    "target",
    "model",
    "experts",
    "train_routers",
    "extra_modules",
    "budget",
    "params_trainable",
    "params_total",
    "settings",
)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def validate_subnetwork(d: Mapping[str, Any], info: ModelInfo | None = None) -> None:
    """Raise a one-line ValueError naming the first key that breaks the contract.

    With `info`, also check the experts exist in that model and params_total matches it.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"subnetwork must be a JSON object, got {type(d).__name__}")
    missing, unknown = [k for k in KEYS if k not in d], sorted(set(d) - set(KEYS))
    if missing or unknown:
        raise ValueError(f"subnetwork keys: missing {missing}, unknown {unknown}")
    for key in ("method", "target", "model"):
        if not isinstance(d[key], str) or (key != "model" and not d[key]):
            raise ValueError(f"subnetwork {key}={d[key]!r} must be a non-empty string")
    experts = d["experts"]
    if not isinstance(experts, list) or not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(x) and x >= 0 for x in p) for p in experts
    ):
        raise ValueError("subnetwork experts must be a list of [layer, expert] pairs of non-negative integers")
    pairs = [tuple(p) for p in experts]
    if pairs != sorted(set(pairs)):
        raise ValueError("subnetwork experts must be sorted by (layer, expert) without duplicates")
    if not isinstance(d["train_routers"], bool):
        raise ValueError(f"subnetwork train_routers={d['train_routers']!r} must be true or false")
    if not isinstance(d["extra_modules"], list) or not all(isinstance(m, str) for m in d["extra_modules"]):
        raise ValueError(f"subnetwork extra_modules={d['extra_modules']!r} must be a list of strings")
    if d["budget"] is not None and not (_is_int(d["budget"]) and d["budget"] >= 0):
        raise ValueError(f"subnetwork budget={d['budget']!r} must be a non-negative integer or null")
    trainable, total = d["params_trainable"], d["params_total"]
    if not (_is_int(trainable) and _is_int(total) and 0 <= trainable <= total):
        raise ValueError(f"subnetwork params_trainable={trainable!r}, params_total={total!r}: need 0 <= trainable <= total")
    if not isinstance(d["settings"], Mapping):
        raise ValueError("subnetwork settings must be a JSON object")
    if info is not None:
        layers = set(info.moe_layers)
        bad = [list(p) for p in pairs if p[0] not in layers or p[1] >= info.num_experts]
        if bad:
            raise ValueError(f"subnetwork experts {bad[:5]} are not experts of {info.model or 'the model'}")
        if total != info.total_params:
            raise ValueError(f"subnetwork params_total={total} differs from the model's {info.total_params}")


def _dumps(d: Mapping[str, Any]) -> str:
    text = json.dumps(d, indent=2, ensure_ascii=False)
    # one [layer, expert] pair per line instead of four
    return re.sub(r"\[\s+(\d+),\s+(\d+)\s+\]", r"[\1, \2]", text) + "\n"


def write_subnetwork(d: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate and write `d` as JSON atomically (temp file in the same folder, then os.replace)."""
    validate_subnetwork(d)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_dumps(d))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_subnetwork(path: str | os.PathLike[str], info: ModelInfo | None = None) -> dict[str, Any]:
    """Read and validate a subnetwork file; errors name the file."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"subnetwork file {path}: {err}") from None
    try:
        validate_subnetwork(d, info)
    except ValueError as err:
        raise UserError(f"subnetwork file {path}: {err}") from None
    return d
