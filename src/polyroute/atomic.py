"""Atomic writes, completion markers and provenance: what makes a killed job leave nothing trusted.

A result is written into a temporary sibling (``<path>.tmp-<pid>``, same directory so the final rename
stays on one filesystem) and renamed into place only when complete. Directory results (Zarr stores)
also carry a completion marker, ``<path>/.complete``, written last; readers trust a directory only when
its marker is there. Leftover temporaries of killed writers are removed by the next writer of the same
path (Snakemake never runs two jobs writing one output at once, so any other temporary is stale).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MARKER_NAME = ".complete"


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary sibling this process writes ``path`` into: ``<path>.tmp-<pid>``."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove ``<path>.tmp-*`` siblings left by killed writers (not this process's own); return them."""
    path = Path(path)
    mine = temp_path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in sorted(path.parent.glob(f"{path.name}.tmp-*")):
        if p == mine:
            continue
        _remove(p)
        removed.append(p)
    return removed


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``, fsynced first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on normal exit it replaces ``path``, on error it is removed.

    The caller writes everything (marker last) into the yielded directory. An existing ``path`` is
    moved aside before the rename and deleted after, so ``path`` is at every moment either absent, the
    old result or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    tmp = temp_path(path)
    _remove(tmp)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    old = path.with_name(f"{path.name}.tmp-old-{os.getpid()}")
    if path.exists() or path.is_symlink():
        os.replace(path, old)
    os.replace(tmp, path)
    _remove(old)


def write_marker(directory: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write the completion marker ``<directory>/.complete`` (JSON); call it last."""
    atomic_write_json(Path(directory) / MARKER_NAME, dict(payload))


def read_marker(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The marker's content, or None when it is missing or unreadable (then the directory is untrusted)."""
    p = Path(directory) / MARKER_NAME
    try:
        with open(p, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable short hash (sha256 of canonical JSON, 16 hex digits) of a configuration mapping."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def git_commit(repo_dir: str | os.PathLike | None = None) -> str:
    """The git commit of the polyroute checkout (``+dirty`` when modified); "unknown" when unavailable."""
    where = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "") if head else "unknown"


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds, e.g. ``2026-01-31T12:00:00+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def provenance(**fields: Any) -> dict[str, Any]:
    """Provenance attrs for a result: the given fields plus package version, git commit and creation time.

    Fields used across polyroute (others are kept as given): ``model``, ``model_revision``,
    ``model_type``, ``num_experts``, ``top_k``, ``router_output`` (``logits`` or ``scores``),
    ``dataset``, ``split``, ``max_length``, ``config_hash``. None values are dropped; values must be
    JSON-serialisable (they become Zarr attributes).
    """
    from polyroute import __version__

    out = {k: v for k, v in fields.items() if v is not None}
    for k, v in out.items():
        try:
            json.dumps(v, default=_json_default)
        except TypeError as e:
            raise ValueError(f"provenance field {k!r}={v!r} is not JSON-serialisable") from e
    out = json.loads(json.dumps(out, default=_json_default))  # numpy scalars -> plain
    out.setdefault("polyroute_version", __version__)
    out.setdefault("git_commit", git_commit())
    out.setdefault("created", utc_now())
    return out


def _json_default(o: Any) -> Any:
    # numpy scalars and arrays show up in attrs; anything else is an error
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
