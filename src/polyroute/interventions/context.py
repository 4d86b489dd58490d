"""Interventions as context managers: router-logit edits applied inside the routers of chosen layers.

The router's own forward runs first (its logits are the model's); the edits of every active
intervention on that layer are applied to the logits in the order they were entered, and the
weights and indices are recomputed once by the family's rule (`adapter.route`) with the edits' pins.
The edited router output replaces the original for everything downstream: the experts, routing
capture hooks and transformers' router-logit recorders all see the intervened routing. Leaving the
context removes the layer's edit; once none is left the router's forward is restored, so the model
routes exactly as before.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polyroute.interventions.edits import LayerEdit
from polyroute.interventions.kinds import DEFAULT_EPS, DEFAULT_STRENGTH, KINDS, TAKES_STRENGTH

log = logging.getLogger(__name__)


class _EditedForward:
    """Installed as `router.forward`: the original forward, then the layer's edits and one re-route."""

    def __init__(self, router: nn.Module, adapter: Any) -> None:
        self.router = router
        self.adapter = adapter
        self.saved = router.__dict__.get("forward")  # an instance forward someone else set (accelerate hooks)
        self.inner = router.forward
        self.edits: list[LayerEdit] = []

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        output = self.inner(*args, **kwargs)
        if not (isinstance(output, tuple) and len(output) == 3):
            raise TypeError(f"router {type(self.router).__name__} does not return (logits, weights, indices)")
        logits, weights, indices = output
        z = logits.float()
        forced = barred = None
        for edit in self.edits:
            z = edit.apply(z)
            if edit.kind == "hard":
                forced = edit.cols if forced is None else forced | edit.cols
            elif edit.kind == "mask":
                barred = edit.cols if barred is None else barred | edit.cols
        new_w, new_i = self.adapter.route(z, self.router, forced=forced, barred=barred)
        return (z.to(logits.dtype).reshape(logits.shape), new_w.to(weights.dtype).reshape(weights.shape),
                new_i.reshape(indices.shape))

    def restore(self) -> None:
        if self.saved is None:
            del self.router.forward
        else:
            self.router.forward = self.saved


class Intervention:
    """Edits of some MoE layers, active inside `with`; build one with `intervene` (or `enforce_routing`)."""

    def __init__(self, model: nn.Module, adapter: Any, edits: Mapping[int, LayerEdit], description: str = "") -> None:
        self.model = model
        self.adapter = adapter
        self.edits = dict(edits)
        self.description = description
        self._active: list[tuple[_EditedForward, LayerEdit]] = []

    @property
    def layers(self) -> list[int]:
        return sorted(self.edits)

    def start(self) -> "Intervention":
        """Activate the edits (what `with` does on entry)."""
        if self._active:
            raise RuntimeError(f"intervention {self.description!r} is already active")
        for layer in self.layers:
            router = self.adapter.router(self.model, layer)
            hook = router.__dict__.get("forward")
            if not isinstance(hook, _EditedForward):
                hook = _EditedForward(router, self.adapter)
                router.forward = hook
            edit = self.edits[layer].to(next(router.parameters(), torch.empty(0)).device)
            hook.edits.append(edit)
            self._active.append((hook, edit))
        return self

    def stop(self) -> None:
        """Remove the edits; a router left with none routes as before."""
        for hook, edit in self._active:
            hook.edits.remove(edit)
            if not hook.edits:
                hook.restore()
        self._active.clear()

    def __enter__(self) -> "Intervention":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _as_pairs(experts: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    pairs = []
    for item in experts:
        try:
            layer, expert = (operator.index(v) for v in item)
        except (TypeError, ValueError):
            raise ValueError(f"experts: {item!r} is not a (layer, expert) pair of integers") from None
        pairs.append((layer, expert))
    return pairs


def _scores_of(pairs: list[tuple[int, int]], scores: Mapping | Sequence[float] | None) -> list[float]:
    if scores is None:
        raise ValueError("affinity needs scores: the s[layer, expert] of every listed expert")
    if isinstance(scores, Mapping):
        missing = [p for p in pairs if p not in scores and list(p) not in scores]
        if missing:
            raise ValueError(f"scores: no score for experts {missing[:5]}")
        values = [float(scores[p]) for p in pairs]
    else:
        values = [float(s) for s in scores]
        if len(values) != len(pairs):
            raise ValueError(f"scores: {len(values)} scores for {len(pairs)} experts")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("scores: every score must be finite")
    return values


def intervene(model: nn.Module, kind: str, experts: Iterable[Sequence[int]], strength: float | None = None,
              scores: Mapping | Sequence[float] | None = None, *, eps: float = DEFAULT_EPS,
              adapter: Any = None) -> Intervention:
    """An intervention on `model`'s routers, for use as `with intervene(...): ...` (METHODS section 7).

    kind: "mask" (logit -inf: never dispatched), "soft" (z += strength * std(z); strength defaults to 0.5,
    negative demotes), "hard" (z = max(z) + eps, and the expert is forced into the top-k), "affinity"
    (z += strength * s * |z|, strength defaults to 0.022, `scores` the s of each expert: a sequence
    aligned with `experts` or a mapping (layer, expert) -> s). `experts`: (model layer index, expert id)
    pairs. Every setting is checked here, before the model is touched (one-line ValueError)."""
    from polyroute.models import get_adapter

    if kind not in KINDS:
        raise ValueError(f"unknown intervention kind {kind!r}; known: {', '.join(KINDS)}")
    adapter = adapter if adapter is not None else get_adapter(model)
    pairs = _as_pairs(experts)
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"experts: {sorted({p for p in pairs if pairs.count(p) > 1})[:5]} listed more than once")
    for layer, expert in pairs:
        if layer not in adapter.moe_layers:
            raise ValueError(f"experts: layer {layer} is not a MoE layer of this {adapter.family} model "
                             f"(MoE layers: {adapter.moe_layers})")
        if not 0 <= expert < adapter.num_experts:
            raise ValueError(f"experts: expert {expert} of layer {layer} is outside 0..{adapter.num_experts - 1}")
    if kind not in TAKES_STRENGTH and strength is not None:
        raise ValueError(f"{kind} takes no strength (got {strength!r})")
    if kind != "affinity" and scores is not None:
        raise ValueError(f"{kind} takes no scores; only affinity does")
    if kind == "hard" and not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps={eps!r} must be a finite number > 0")
    lam = DEFAULT_STRENGTH.get(kind) if strength is None else float(strength)
    if lam is not None and not math.isfinite(lam):
        raise ValueError(f"strength={strength!r} must be finite")
    values = _scores_of(pairs, scores) if kind == "affinity" else [1.0] * len(pairs)
    # the per-expert coefficient each edit reads: lambda (soft), lambda * s (affinity), eps (hard)
    scale = {"mask": 0.0, "hard": float(eps)}.get(kind, lam)
    by_layer: dict[int, list[int]] = {}
    for i, (layer, _) in enumerate(pairs):
        by_layer.setdefault(layer, []).append(i)
    edits = {}
    for layer, rows in by_layer.items():
        cols = [pairs[i][1] for i in rows]
        adapter.check_pins(layer, set(cols) if kind == "hard" else set(), set(cols) if kind == "mask" else set())
        edits[layer] = LayerEdit.of(kind, cols, [scale * values[i] for i in rows], adapter.num_experts)
    if not edits:
        log.warning("intervention %s has no experts: it changes nothing", kind)
    return Intervention(model, adapter, edits, description=f"{kind} on {len(pairs)} experts")


def from_expert_set(model: nn.Module, expert_set: Mapping[str, Any] | str | os.PathLike, strength: float | None = None,
                    *, adapter: Any = None) -> Intervention:
    """The intervention an expert-set file describes (``results/<run>/interventions/<name>.json``): its
    kind, experts and (affinity) scores, at `strength` (default: the first of its strengths)."""
    data = expert_set if isinstance(expert_set, Mapping) else json.loads(Path(expert_set).read_text(encoding="utf-8"))
    kind = data["kind"]
    if strength is None and kind in TAKES_STRENGTH:
        strength = data["strengths"][0]
    return intervene(model, kind, data["experts"], strength, data.get("scores") if kind == "affinity" else None,
                     adapter=adapter)
