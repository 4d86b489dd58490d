"""Delta artifacts: save, load, apply back to a model, merge into a full checkpoint.

``delta.safetensors`` holds, per trained tensor ``<name>`` (its name in the base model):
``<name>::delta`` ([len(rows), ...] or the full shape) and, for row deltas, ``<name>::rows`` (int64).
The adapted weight is ``W.index_add(0, rows, delta)`` (or ``W + delta``), the same arithmetic as in
training, so applying a delta reproduces the trained model bit for bit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import nn

from polyroute.atomic import atomic_dir, atomic_write_bytes

FORMAT = "polyroute-delta/1"
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


def load_delta(path: str | os.PathLike) -> tuple[dict[str, tuple[torch.Tensor | None, torch.Tensor]], dict[str, str]]:
    """Read a delta file: ``({name: (rows or None, delta)}, metadata)``. Safetensors only."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a polyroute delta (format={meta.get('format')!r}, expected {FORMAT!r})")
        keys = list(f.keys())
        tensors = {k: f.get_tensor(k) for k in keys}
    out: dict[str, tuple[torch.Tensor | None, torch.Tensor]] = {}
    for key in keys:
        if key.endswith(DELTA_SUFFIX):
            name = key[: -len(DELTA_SUFFIX)]
            out[name] = (tensors.get(name + ROWS_SUFFIX), tensors[key])
        elif not key.endswith(ROWS_SUFFIX):
            raise ValueError(f"{path}: unexpected tensor {key!r}")
    return out, meta


@torch.no_grad()
def apply_delta(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Add a saved delta to ``model``'s weights in place (all checks first) and return the model."""
    deltas, _ = load_delta(path)
    params = dict(model.named_parameters())
    for name, (rows, delta) in deltas.items():
        if name not in params:
            raise ValueError(f"{path}: tensor {name!r} is not a parameter of {type(model).__name__}")
        base = params[name]
        want = tuple(base.shape) if rows is None else (rows.numel(), *base.shape[1:])
        if tuple(delta.shape) != want:
            raise ValueError(f"{path}: {name} delta has shape {tuple(delta.shape)}, the model needs {want}")
        if rows is not None and (int(rows.min()) < 0 or int(rows.max()) >= base.shape[0]):
            raise ValueError(f"{path}: {name} rows {rows.tolist()} outside 0..{base.shape[0] - 1}")
    for name, (rows, delta) in deltas.items():
        base = params[name]
        d = delta.to(device=base.device, dtype=base.dtype)
        if rows is None:
            base.add_(d)
        else:
            base.copy_(base.index_add(0, rows.to(base.device), d))
    return model


def merge(base_path: str | os.PathLike, delta_path: str | os.PathLike, out_dir: str | os.PathLike,
          *, trust_remote_code: bool = False) -> Path:
    """Write base + delta as a full Hugging Face checkpoint (safetensors, tokenizer copied) to ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    load_delta(delta_path)  # fail on a bad delta before loading a large model
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto", use_safetensors=True,
                                                 trust_remote_code=trust_remote_code)
    apply_delta(model, delta_path)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        try:
            tok = AutoTokenizer.from_pretrained(base_path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError):
            tok = None  # a checkpoint without a tokenizer stays without one
        if tok is not None:
            tok.save_pretrained(tmp)
    return Path(out_dir)
