"""The router-logit edits of METHODS section 7, on one layer's logits [N, E] (float32), before the
family's softmax / top-k. Each edit touches only its experts' columns; -inf logits (masked experts) stay
-inf, and the standard deviation of `soft` is taken over a token's finite logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from polyroute.interventions.kinds import KINDS


def finite_std(z: torch.Tensor) -> torch.Tensor:
    """Per-row sample standard deviation (n - 1, torch's default) over the finite entries, [N, 1]."""
    ok = torch.isfinite(z)
    n = ok.sum(dim=-1, keepdim=True)
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    mean = torch.where(ok, z, zero).sum(dim=-1, keepdim=True) / n
    var = torch.where(ok, (z - mean) ** 2, zero).sum(dim=-1, keepdim=True) / (n - 1).clamp_min(1)
    return var.sqrt()


@dataclass(frozen=True)
class LayerEdit:
    """One intervention's edit of one layer: `kind` on expert columns `cols` [m] (int64), with `coef` [m]
    (soft: lambda, affinity: lambda * s, hard: eps; unused by mask)."""

    kind: str
    cols: torch.Tensor
    coef: torch.Tensor

    def to(self, device: torch.device) -> "LayerEdit":
        return LayerEdit(self.kind, self.cols.to(device), self.coef.to(device))

    def columns(self, num_experts: int) -> torch.Tensor:
        """Bool [E] mask of the edited experts."""
        return torch.zeros(num_experts, dtype=torch.bool, device=self.cols.device).index_fill(0, self.cols, True)

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """The edited logits (a new tensor; `z` is left as it is, for autograd)."""
        sel = z.index_select(-1, self.cols)
        if self.kind == "mask":  # z_i = -inf
            new = torch.full_like(sel, float("-inf"))
        elif self.kind == "soft":  # z_i += lambda * std(z)
            new = torch.where(torch.isfinite(sel), sel + self.coef * finite_std(z), sel)
        elif self.kind == "hard":  # z_i = max(z) + eps
            new = (z.max(dim=-1, keepdim=True).values + self.coef).expand_as(sel)
        elif self.kind == "affinity":  # z_i += lambda * s_i * |z_i|
            new = torch.where(torch.isfinite(sel), sel + self.coef * sel.abs(), sel)
        else:
            raise ValueError(f"unknown intervention kind {self.kind!r}; known: {', '.join(KINDS)}")
        return z.index_copy(-1, self.cols, new)
