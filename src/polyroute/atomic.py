"""Atomic writes, completion markers, output locks and provenance: what makes a killed or a second
writer leave nothing trusted and nothing damaged.

A result is written into a temporary sibling (``<path>.tmp-<pid>``, same directory so the final rename
stays on one filesystem) and renamed into place only when complete. Directory results (Zarr stores,
adapters, evaluations, merged checkpoints) also carry a completion marker, ``<path>/.complete``, written
last, whose ``format`` names the kind of step that wrote it; readers trust a directory only when its
marker is there, and a step replaces only an absent path, an empty directory or a directory whose
marker is of its own kind (``check_replaceable``). A writer holds ``<path>.lock`` (an exclusive
``flock``, released by the kernel when the process dies) for as long as it writes, so a second writer
of the same path fails at once; leftover temporaries are removed only when the process that made them
is gone.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from polyroute.errors import UserError

_log = logging.getLogger(__name__)

MARKER_NAME = ".complete"
LOCK_SUFFIX = ".lock"


def temp_path(path: str | os.PathLike) -> Path:
    """The temporary sibling this process writes ``path`` into: ``<path>.tmp-<pid>``."""
    path = Path(path)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def clean_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove ``<path>.tmp-*`` siblings whose writer process is gone (never a live one's); return them."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in sorted(path.parent.glob(f"{path.name}.tmp-*")):
        if _writer_alive(p.name.rpartition("-")[2]):
            continue
        _remove(p)
        removed.append(p)
    return removed


def _writer_alive(pid_text: str) -> bool:
    """Whether the process of a temporary's pid suffix runs (this host; an unparsable suffix counts as live)."""
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


_held_locks: dict[Path, int] = {}
_held_guard = threading.Lock()


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file beside an output: ``<path>.lock``."""
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


@contextmanager
def output_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock ``<path>.lock`` for the block; a UserError at once when another process does.

    Re-entrant within a process. The lock file is removed on release; a process that opened it just
    before checks after locking that it still holds the file at that name, so removal never lets two in.
    """
    key = Path(os.path.abspath(path))
    with _held_guard:
        if _held_locks.get(key):
            _held_locks[key] += 1
            held_here = True
        else:
            held_here = False
    if held_here:
        try:
            yield
        finally:
            with _held_guard:
                _held_locks[key] -= 1
        return
    lock = lock_path(key)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, key)
    with _held_guard:
        _held_locks[key] = 1
    try:
        yield
    finally:
        with _held_guard:
            del _held_locks[key]
        lock.unlink(missing_ok=True)
        os.close(fd)


def _acquire(lock: Path, path: Path) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"{path} is being written by another process ({holder}); wait for it to finish "
                            f"or stop it (lock {lock})") from None
        except OSError as exc:  # a filesystem without flock (Lustre mounted -o noflock): write unguarded
            _log.warning("%s: the filesystem does not support locks (%s); concurrent writers are not detected",
                         lock, exc.strerror)
            return fd
        try:
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
            return fd
        os.close(fd)  # the previous holder removed the file after we opened it: lock the new one


def check_replaceable(path: str | os.PathLike, kind: str) -> None:
    """UserError unless ``path`` is absent, an empty directory, or a directory whose marker is of ``kind``.

    A step replaces only what a step of its own kind wrote: never a model, a run folder or a file.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise UserError(f"{path} exists and is not a {kind} directory; move it away or choose another output path")
    if not any(path.iterdir()):
        return
    marker = read_marker(path)
    if marker is None or marker.get("format") != kind:
        found = f"a {marker['format']} result" if marker and marker.get("format") else "no polyroute marker"
        raise UserError(f"{path} holds something this step did not write ({found}, expected {kind}); "
                        "move it away or choose another output path")


def publish_dir(work: str | os.PathLike, path: str | os.PathLike, kind: str) -> None:
    """Rename the finished directory ``work`` (its marker of ``kind`` written) onto ``path``.

    An existing ``path`` of the same kind is moved aside first and deleted after, so ``path`` is at
    every moment absent, the old result or the complete new one. Hold ``output_lock(path)`` around it.
    """
    work, path = Path(work), Path(path)
    marker = read_marker(work)
    if marker is None or marker.get("format") != kind:
        raise RuntimeError(f"{work}: publishing a {kind} result without its completion marker")
    check_replaceable(path, kind)
    old = path.with_name(f"{path.name}.tmp-old-{os.getpid()}")
    if path.exists() or path.is_symlink():
        os.replace(path, old)
    os.replace(work, path)
    _remove(old)


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
def atomic_dir(path: str | os.PathLike, kind: str) -> Iterator[Path]:
    """Yield a fresh temporary directory; on normal exit it replaces ``path``, on error it is removed.

    The caller writes everything into the yielded directory, last the marker whose ``format`` is
    ``kind``. The output is locked for the whole block, and a ``path`` holding anything but a result of
    ``kind`` is refused before any work (``check_replaceable``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(path):
        check_replaceable(path, kind)
        clean_stale_temps(path)
        tmp = temp_path(path)
        _remove(tmp)
        tmp.mkdir()
        try:
            yield tmp
        except BaseException:
            _remove(tmp)
            raise
        try:
            publish_dir(tmp, path, kind)
        except BaseException:
            _remove(tmp)
            raise


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
