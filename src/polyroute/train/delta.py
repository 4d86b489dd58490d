"""Row deltas: train chosen rows of frozen tensors (e.g. experts of a fused [E, ...] tensor).

A trained tensor ``W`` becomes ``W + scatter(rows, delta)`` through ``torch.nn.utils.parametrize``:
the base stays a frozen Parameter, the only trainable tensor is ``delta[len(rows), ...]``, so
gradients and optimizer state exist for the selected rows only. Rows not listed are copied, never
recomputed, so they are bit-identical to the base; a zero delta reproduces the base exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize


class RowDelta(nn.Module):
    """Parametrization ``W -> W.index_add(0, rows, delta)``; ``rows=None`` trains the whole tensor."""

    def __init__(self, base: torch.Tensor, rows: torch.Tensor | None) -> None:
        super().__init__()
        if rows is not None:
            rows = torch.as_tensor(rows, dtype=torch.long, device=base.device)
            if rows.ndim != 1 or rows.numel() == 0:
                raise ValueError(f"rows must be a non-empty 1-D index, got shape {tuple(rows.shape)}")
            if rows.unique().numel() != rows.numel():
                raise ValueError(f"rows must be unique, got {rows.tolist()}")
            if int(rows.min()) < 0 or int(rows.max()) >= base.shape[0]:
                raise ValueError(f"rows {rows.tolist()} out of range for a tensor with {base.shape[0]} rows")
        shape = tuple(base.shape) if rows is None else (rows.numel(), *base.shape[1:])
        self.delta = nn.Parameter(torch.zeros(shape, dtype=base.dtype, device=base.device))
        self.register_buffer("rows", rows)

    def forward(self, base: torch.Tensor) -> torch.Tensor:
        if self.rows is None:
            return base + self.delta
        return base.index_add(0, self.rows, self.delta.to(base.dtype))


@dataclass
class DeltaEntry:
    """One trained tensor: where it lives and its parametrization."""

    name: str  # the base parameter's name in ``model.named_parameters()`` before attaching
    module: nn.Module
    attr: str
    param: RowDelta
    hooks: list = field(default_factory=list)  # the cache hooks, removed by detach_deltas


def _cache_on(module: nn.Module, args: tuple) -> None:
    cm = parametrize.cached()
    cm.__enter__()
    module.__dict__.setdefault("_polyroute_caches", []).append(cm)


def _cache_off(module: nn.Module, args: tuple, output: object) -> None:
    module.__dict__["_polyroute_caches"].pop().__exit__(None, None, None)


def _cache_during_forward(module: nn.Module) -> list:
    """Compute each parametrized tensor once per forward of ``module``, not once per access.

    Fused-expert forwards index ``self.gate_up_proj[e]`` once per expert; uncached, every access
    would rebuild the whole [E, ...] tensor. Hooks (not a context around the model call) so that
    gradient-checkpoint recomputation and ZeRO-3's gathered forwards are cached too.
    """
    return [module.register_forward_pre_hook(_cache_on),
            module.register_forward_hook(_cache_off, always_call=True)]


def _split_name(name: str) -> tuple[str, str]:
    module_name, _, attr = name.rpartition(".")
    return module_name, attr


def attach_deltas(model: nn.Module, plan: dict[str, torch.Tensor | None]) -> dict[str, DeltaEntry]:
    """Freeze every parameter of ``model`` and add a trainable RowDelta to each tensor in ``plan``.

    ``plan`` maps a parameter name (as in ``model.named_parameters()``) to its rows (or None = all).
    Returns name -> DeltaEntry in ``plan`` order; the trainable parameters are the entries' ``delta``.
    """
    named = dict(model.named_parameters())
    missing = [n for n in plan if n not in named]
    if missing:
        raise ValueError(f"trainable tensor(s) not found in the model: {missing[:5]}")
    for p in model.parameters():
        p.requires_grad_(False)
    entries: dict[str, DeltaEntry] = {}
    for name, rows in plan.items():
        module_name, attr = _split_name(name)
        module = model.get_submodule(module_name)
        base = named[name]
        if not base.is_floating_point():
            raise ValueError(f"trainable tensor {name} is not floating point ({base.dtype})")
        delta = RowDelta(base, rows)
        hooks = [] if parametrize.is_parametrized(module) else _cache_during_forward(module)
        parametrize.register_parametrization(module, attr, delta, unsafe=True)
        entries[name] = DeltaEntry(name, module, attr, delta, hooks)
    return entries


def detach_deltas(entries: dict[str, DeltaEntry]) -> None:
    """Remove the parametrizations, leaving each base tensor exactly as it was before attaching."""
    for e in entries.values():
        for h in e.hooks:
            h.remove()
        if parametrize.is_parametrized(e.module, e.attr):
            parametrize.remove_parametrizations(e.module, e.attr, leave_parametrized=False)


def delta_parameters(entries: dict[str, DeltaEntry]) -> list[nn.Parameter]:
    """The trainable parameters, in entry order (what the optimizer gets)."""
    return [e.param.delta for e in entries.values()]


def count_delta_elements(entries: dict[str, DeltaEntry]) -> int:
    """Number of trainable scalars."""
    return sum(e.param.delta.numel() for e in entries.values())
