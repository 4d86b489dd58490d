"""Delta artifacts: save, load, apply back to a model, merge into a full checkpoint.

``delta.safetensors`` holds, per trained tensor ``<name>`` (its name in the base model):
``<name>::delta`` ([len(rows), ...] or the full shape) and, for row deltas, ``<name>::rows`` (int64).
The adapted weight is ``W.index_add(0, rows, delta)`` (or ``W + delta``), the same arithmetic as in
training, so applying a delta reproduces the trained model bit for bit.

Its metadata records the base model it was trained on (``base_record``): ``base_model`` (id or path),
``base_revision`` and ``base_shapes`` (the touched tensors' full shapes, the fingerprint checked
against every model the delta is applied to). An adapter directory is trusted only with its marker
(``ADAPTER_FORMAT``, written last by training); ``read_adapter`` checks marker, file, values and base
before any model is loaded.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from polyroute.atomic import atomic_dir, atomic_write_bytes, read_marker, write_marker
from polyroute.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "polyroute-delta/1"
ADAPTER_FORMAT = "polyroute-adapter/1"  # an adapter directory's marker
MERGED_FORMAT = "polyroute-merged/1"  # a merged checkpoint's marker
DELTA_FILE = "delta.safetensors"
DELTA_SUFFIX = "::delta"
ROWS_SUFFIX = "::rows"


def save_delta(path: str | os.PathLike, deltas: Mapping[str, tuple[torch.Tensor | None, torch.Tensor]],
               metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``{name: (rows or None, delta)}`` to a safetensors file atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for name, (rows, delta) in deltas.items():
        tensors[name + DELTA_SUFFIX] = delta.detach().to("cpu").contiguous()
        if rows is not None:
            tensors[name + ROWS_SUFFIX] = rows.detach().to("cpu", torch.long).contiguous()
    meta = {"format": FORMAT}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    atomic_write_bytes(path, _sorted_metadata(safetensors_save(tensors, metadata=meta)))


def _sorted_metadata(data: bytes) -> bytes:
    """The safetensors file with its metadata keys in sorted order.

    safetensors writes metadata in hash order, which changes from process to process, so equal
    deltas would be different files; sorting makes a rerun's file byte-identical. Tensor offsets
    count from the end of the header, so the header may be rewritten (padded to 8 bytes, as
    safetensors does) without touching the data.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size:]


def base_record(model: nn.Module, model_id: str | os.PathLike, revision: str | None,
                names: Iterable[str]) -> dict[str, str]:
    """The delta metadata naming the base model: id, revision and the touched tensors' shapes."""
    params = dict(model.named_parameters())
    return {"base_model": str(model_id), "base_revision": revision or "",
            "base_shapes": json.dumps({name: list(params[name].shape) for name in sorted(names)})}


def load_delta(path: str | os.PathLike) -> tuple[dict[str, tuple[torch.Tensor | None, torch.Tensor]], dict[str, str]]:
    """Read a delta file: ``({name: (rows or None, delta)}, metadata)``. Safetensors only, values finite."""
    if not Path(path).is_file():
        raise UserError(f"no delta at {path}; train the adapter first (train_subnetwork)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise UserError(f"{path}: not a polyroute delta (format={meta.get('format')!r}, expected {FORMAT!r})")
            keys = list(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys}
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own types for every malformed file
        raise UserError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc}); "
                        "retrain the adapter") from None
    out: dict[str, tuple[torch.Tensor | None, torch.Tensor]] = {}
    for key in keys:
        if key.endswith(DELTA_SUFFIX):
            name = key[: -len(DELTA_SUFFIX)]
            if not bool(torch.isfinite(tensors[key]).all()):
                raise UserError(f"{path}: the delta of {name} holds NaN or infinite values (training diverged); "
                                "retrain with a lower lr")
            out[name] = (tensors.get(name + ROWS_SUFFIX), tensors[key])
        elif not key.endswith(ROWS_SUFFIX):
            raise UserError(f"{path}: unexpected tensor {key!r}")
    return out, meta


def same_model(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two model ids name the same model: equal text, or the same local directory."""
    if str(a) == str(b):
        return True
    try:
        return Path(a).is_dir() and Path(b).is_dir() and os.path.samefile(a, b)
    except OSError:
        return False


def check_base_name(path: str | os.PathLike, meta: Mapping[str, str], model_id: str | os.PathLike,
                    revision: str | None) -> None:
    """UserError unless the delta at ``path`` was trained on ``model_id`` at ``revision``."""
    if "base_shapes" not in meta:
        raise UserError(f"{path}: the delta records no base model (written by an older polyroute); retrain it")
    trained = (meta["base_model"], meta["base_revision"] or None)
    if not same_model(trained[0], model_id) or trained[1] != (revision or None):
        raise UserError(f"{path}: the delta was trained on {trained[0]} (revision {trained[1]}), not on {model_id} "
                        f"(revision {revision or None}); apply it to the model it was trained on")


def read_adapter(adapter: str | os.PathLike, model_id: str | os.PathLike | None = None,
                 revision: str | None = None) -> tuple[Path, dict[str, tuple[torch.Tensor | None, torch.Tensor]], dict[str, str]]:
    """(delta path, deltas, metadata) of a finished adapter (its directory or its delta file), all checked.

    The directory's completion marker is required; the delta must be readable and finite and, when
    ``model_id`` is given, have been trained on that model and revision.
    """
    delta = Path(adapter)
    delta = delta / DELTA_FILE if delta.is_dir() else delta
    marker = read_marker(delta.parent)
    if not delta.is_file():
        raise UserError(f"no trained delta at {delta}; train the adapter first (train_subnetwork)")
    if marker is None or marker.get("format") != ADAPTER_FORMAT:
        raise UserError(f"adapter {delta.parent} has no completion marker (its training did not finish); "
                        "rerun train_subnetwork")
    deltas, meta = load_delta(delta)
    if model_id is not None:
        check_base_name(delta, meta, model_id, revision)
    return delta, deltas, meta


def check_base_shapes(model: nn.Module, path: str | os.PathLike, meta: Mapping[str, str]) -> None:
    """UserError when a touched tensor of ``model`` differs in shape from the one the delta was trained on."""
    if "base_shapes" not in meta:
        return
    params = dict(model.named_parameters())
    for name, shape in json.loads(meta["base_shapes"]).items():
        have = list(params[name].shape) if name in params else None
        if have != shape:
            raise UserError(f"{path}: trained on {meta['base_model']}, whose {name} has shape {shape}; this model's "
                            f"is {have}: apply the delta to the model it was trained on")


@torch.no_grad()
def apply_delta(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Add a saved delta to ``model``'s weights in place (all checks first) and return the model."""
    deltas, meta = load_delta(path)
    check_base_shapes(model, path, meta)
    params = dict(model.named_parameters())
    for name, (rows, delta) in deltas.items():
        if name not in params:
            raise UserError(f"{path}: tensor {name!r} is not a parameter of {type(model).__name__}")
        base = params[name]
        want = tuple(base.shape) if rows is None else (rows.numel(), *base.shape[1:])
        if tuple(delta.shape) != want:
            raise UserError(f"{path}: {name} delta has shape {tuple(delta.shape)}, the model needs {want}")
        if rows is not None and (int(rows.min()) < 0 or int(rows.max()) >= base.shape[0]):
            raise UserError(f"{path}: {name} rows {rows.tolist()} outside 0..{base.shape[0] - 1}")
    for name, (rows, delta) in deltas.items():
        base = params[name]
        d = delta.to(device=base.device, dtype=base.dtype)
        if rows is None:
            base.add_(d)
        else:
            base.copy_(base.index_add(0, rows.to(base.device), d))
    return model


def merge(base_path: str | os.PathLike, delta_path: str | os.PathLike, out_dir: str | os.PathLike,
          *, trust_remote_code: bool = False, any_base: bool = False) -> Path:
    """Write base + delta as a full Hugging Face checkpoint (safetensors, tokenizer copied) to ``out_dir``.

    ``out_dir`` must be new, empty or an earlier merge: never the base model, inside it, or inside a
    run folder or result. The delta is read and checked before the model loads; ``any_base`` accepts a
    base named differently from the one it was trained on (its tensor shapes must still match).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from polyroute.models.remote_code import allowed_remote_code

    check_merge_target(base_path, out_dir)
    _, meta = load_delta(delta_path)  # fail on a bad delta before loading a large model
    if not any_base:
        check_base_name(delta_path, meta, base_path, meta.get("base_revision") or None)
    trust = allowed_remote_code(str(base_path), None, trust_remote_code)
    with atomic_dir(out_dir, MERGED_FORMAT) as tmp:
        model = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto", use_safetensors=True,
                                                     trust_remote_code=trust)
        apply_delta(model, delta_path)
        model.save_pretrained(tmp, safe_serialization=True)
        try:
            tok = AutoTokenizer.from_pretrained(base_path, trust_remote_code=trust)
        except (OSError, ValueError):
            tok = None  # a checkpoint without a tokenizer stays without one
        if tok is not None:
            tok.save_pretrained(tmp)
        write_marker(tmp, {"format": MERGED_FORMAT, "base": str(base_path), "delta": str(delta_path)})
    return Path(out_dir)


def check_merge_target(base_path: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """UserError when ``out_dir`` is, holds or lies inside the base model, a run folder or a result."""
    out = Path(out_dir).resolve()
    base = Path(base_path).resolve() if Path(base_path).exists() else None
    if base is not None and (out == base or base in out.parents or out in base.parents):
        raise UserError(f"{out_dir}: the merged checkpoint would overwrite the base model {base_path}; "
                        "choose an output directory outside it")
    for folder in out.parents:
        if read_marker(folder) is not None or (folder / "model" / "info.json").is_file():
            raise UserError(f"{out_dir} lies inside {folder}, a polyroute run folder or result; "
                            "choose an output directory outside it")
