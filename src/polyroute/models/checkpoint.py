"""A local checkpoint checked before any expensive work: config parses, weights present, headers readable.

A model id that is written like a path (``/...``, ``./...``, ``~...`` or with more than one ``/``) is
a local checkpoint and is never looked up on the hub: a mistyped path is one clear line, not a hub
error after retries. Safetensors headers are read (a few KiB per file), not the weights, so the
check costs milliseconds however large the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from polyroute.errors import UserError

INDEX = "model.safetensors.index.json"


def local_checkpoint(model_id: str | os.PathLike) -> Path | None:
    """The directory a model id names, or None for a hub id; UserError for a path that does not exist."""
    text = str(model_id)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model.id: {text} is a file, not a checkpoint directory (config.json + *.safetensors)")
        return path
    if text.startswith(("/", ".", "~")) or text.count("/") > 1 or text.endswith("/"):
        raise UserError(f"model.id: no checkpoint directory at {text} (and it is not a hub id org/name); "
                        "fix the path")
    return None


def check_local_checkpoint(path: str | os.PathLike) -> list[Path]:
    """UserError unless `path` has a parsable config.json and complete safetensors weights; the weight files."""
    path = Path(path)
    config = path / "config.json"
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no config.json; a checkpoint directory needs config.json and *.safetensors") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{config}: not valid JSON ({exc}); restore the checkpoint's config") from None
    files = _weight_files(path)
    for file in files:
        _check_header(file)
    return files


def _weight_files(path: Path) -> list[Path]:
    index = path / INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{index}: not a valid safetensors index ({type(exc).__name__}); restore it") from None
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise UserError(f"{path}: weight file(s) {', '.join(missing[:3])} named in {INDEX} are missing; "
                            "download the checkpoint again")
        return [path / n for n in names]
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in path.glob("*.bin"))
        hint = (f"only pickled weights ({', '.join(pickled[:2])}), which polyroute never loads: convert them to "
                "safetensors") if pickled else "download or copy the weights"
        raise UserError(f"{path}: no *.safetensors weights; {hint}")
    return files


def _check_header(file: Path) -> None:
    """The safetensors header parses and its tensors fit in the file (a truncated file fails here)."""
    size = file.stat().st_size
    try:
        with open(file, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or n > size - 8:
                raise ValueError(f"header of {n} bytes in a {size}-byte file")
            header = json.loads(f.read(n))
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise UserError(f"{file}: not a readable safetensors file ({exc}); download the checkpoint again") from None
    if 8 + n + end > size:
        raise UserError(f"{file}: truncated ({size} bytes, its header needs {8 + n + end}); download the checkpoint again")
