"""Variants: the base model plus something that changes it, as one object the evaluation wraps around.

A variant is a name and a context manager factory: inside ``variant.applied(model)`` the model is the
variant, on exit it is exactly the base again (the rows an adapter touched are copied back, not
recomputed). Adapters are ``<method>-<target>``; the interventions add ``steer-<name>`` and
``mask-<name>`` the same way.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = ["Variant", "BASE", "adapter_variant", "intervention_variant", "parse_variant"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Variant:
    """A named change to a model; `applied(model)` is a context manager."""

    name: str
    kind: str  # base | adapter | steer | mask
    source: str | None  # the artifact it comes from (adapter directory, expert-set file)
    applied: Callable[[Any], contextlib.AbstractContextManager]
    strength: float | None = None  # an intervention's lambda

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "source": self.source, "strength": self.strength}


BASE = Variant("base", "base", None, lambda model: contextlib.nullcontext(model))


def _adapter_context(delta_path: Path) -> Callable[[Any], contextlib.AbstractContextManager]:
    @contextlib.contextmanager
    def applied(model: Any) -> Iterator[Any]:
        from polyroute.train.artifacts import apply_delta, check_base_shapes, load_delta

        deltas, meta = load_delta(delta_path)
        check_base_shapes(model, delta_path, meta)
        params = dict(model.named_parameters())
        missing = [name for name in deltas if name not in params]
        if missing:
            raise ValueError(f"{delta_path}: tensor {missing[0]!r} is not a parameter of {type(model).__name__}")
        saved = {}
        for name, (rows, _) in deltas.items():
            base = params[name]
            saved[name] = (rows, base.detach().clone() if rows is None else base.detach()[rows.to(base.device)].clone())
        apply_delta(model, delta_path)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, (rows, original) in saved.items():
                    if rows is None:
                        params[name].copy_(original)
                    else:
                        params[name][rows.to(original.device)] = original
    return applied


def adapter_variant(name: str, adapter_dir: str | os.PathLike, model: Mapping[str, Any] | None = None) -> Variant:
    """The base model with a trained delta (``<adapter_dir>/delta.safetensors``) added in memory.

    The adapter is read and checked here, before any model loads (`polyroute.train.artifacts.read_adapter`):
    its marker, its values and, given the config's `model` block, the base model it was trained on."""
    from polyroute.train.artifacts import read_adapter

    model_id = None if model is None else model["id"]
    path, _, _ = read_adapter(adapter_dir, model_id, None if model is None else model.get("revision"))
    return Variant(name, "adapter", str(Path(adapter_dir)), _adapter_context(path))


def intervention_variant(name: str, expert_set: str | os.PathLike, strength: float | None = None) -> Variant:
    """The base model routed under an intervention (`polyroute.interventions.from_expert_set`): the
    expert-set file's kind and experts, at `strength` (None: the file's first)."""
    import json

    path = Path(expert_set)
    data = json.loads(path.read_text(encoding="utf-8"))  # a bad file fails before any model loads
    kind = "mask" if data["kind"] == "mask" else "steer"

    def applied(model: Any) -> contextlib.AbstractContextManager:
        from polyroute.interventions import from_expert_set

        return from_expert_set(model, data, strength)
    return Variant(name, kind, str(path), applied, strength)


def parse_variant(name: str, *, adapters: dict[str, str | os.PathLike] | None = None) -> Variant:
    """The variant called `name`: ``base`` or an adapter of `adapters` (name -> adapter directory)."""
    if not _NAME.match(name):
        raise ValueError(f"bad variant name {name!r}")
    if name == "base":
        return BASE
    if adapters and name in adapters:
        return adapter_variant(name, adapters[name])
    raise ValueError(f"unknown variant {name!r} (known: base{''.join(', ' + a for a in sorted(adapters or {}))})")
