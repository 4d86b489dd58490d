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
    """One intervention's edit of one layer: `kind` on the experts where `coef` [E] is set (`cols`, bool [E]);
    `coef` holds lambda (soft), lambda * s (affinity) or eps (hard), 0 elsewhere. Dense [E] vectors: one
    broadcast op per token batch, no gather / scatter along the expert dim (slow on CPU)."""

    kind: str
    cols: torch.Tensor
    coef: torch.Tensor

    @classmethod
    def of(cls, kind: str, experts: list[int], coefs: list[float], num_experts: int) -> "LayerEdit":
        if kind not in KINDS:
            raise ValueError(f"unknown intervention kind {kind!r}; known: {', '.join(KINDS)}")
        cols = torch.zeros(num_experts, dtype=torch.bool)
        coef = torch.zeros(num_experts, dtype=torch.float32)
        index = torch.tensor(experts, dtype=torch.long)
        cols[index] = True
        coef[index] = torch.tensor(coefs, dtype=torch.float32)
        return cls(kind, cols, coef)

    def to(self, device: torch.device) -> "LayerEdit":
        return LayerEdit(self.kind, self.cols.to(device), self.coef.to(device))

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """The edited logits (a new tensor; `z` is left as it is, for autograd). Unedited columns get
        + 0, which leaves every value as it was."""
        if self.kind == "mask":  # z_i = -inf
            return z.masked_fill(self.cols, float("-inf"))
        if self.kind == "soft":  # z_i += lambda * std(z)
            return z + finite_std(z) * self.coef
        if self.kind == "hard":  # z_i = max(z) + eps
            return torch.where(self.cols, z.max(dim=-1, keepdim=True).values + self.coef, z)
        # affinity, z_i += lambda * s_i * |z_i|; a masked (-inf) logit stays -inf
        return z + self.coef * z.abs().nan_to_num(posinf=0.0)
