"""Each family's routing rule: router logits [N, E] -> (weights [N, k] float32, indices [N, k] int64).

Written from the transformers 5 router code of every family (read, not imported), so the routing a
model really used can be recomputed from logits alone: for reference checks and for interventions
that edit logits before the rule is applied. Inference (eval-mode) behaviour only: no jitter, no sampling.
"""

from __future__ import annotations

import torch


def softmax_topk(logits: torch.Tensor, k: int, normalize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over all experts, then top-k; renormalise the k weights when `normalize` (Qwen, OLMoE, Mixtral)."""
    probs = torch.softmax(logits.float(), dim=-1)
    weights, indices = torch.topk(probs, k, dim=-1)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, indices


def topk_softmax(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k on the logits, then softmax over the k chosen ones only (GPT-OSS)."""
    values, indices = torch.topk(logits, k, dim=-1)
    return torch.softmax(values.float(), dim=-1), indices


def _sparsemixer_pick(scores: torch.Tensor, masked: torch.Tensor, jitter_eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One sparsemixer step: argmax of `masked`; its weight = softmax over experts within the jitter band."""
    threshold, index = masked.max(dim=-1, keepdim=True)
    factor = scores.abs().clamp(min=threshold)
    outside = ((threshold - scores) / factor) > (2 * jitter_eps)
    gates = torch.softmax(masked.masked_fill(outside, float("-inf")).float(), dim=-1)
    return gates.gather(-1, index), index


def sparsemixer(logits: torch.Tensor, jitter_eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Phi-3.5-MoE's eval-mode sparsemixer (always 2 experts): each pick's weight is a softmax over the
    experts whose logit lies within a relative band 2*jitter_eps of that pick's logit."""
    w1, i1 = _sparsemixer_pick(logits, logits, jitter_eps)
    w2, i2 = _sparsemixer_pick(logits, torch.scatter(logits, -1, i1, float("-inf")), jitter_eps)
    return torch.cat((w1, w2), dim=-1), torch.cat((i1, i2), dim=-1)


def _group_mask(choice: torch.Tensor, n_group: int, topk_group: int, per_group: str) -> torch.Tensor:
    """Boolean [N, E] mask of experts in the `topk_group` best groups (DeepSeek group-limited routing)."""
    n, e = choice.shape
    grouped = choice.view(n, n_group, e // n_group)
    if per_group == "max":
        group_scores = grouped.max(dim=-1).values
    else:  # "top2sum", DeepSeek-V3
        group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)
    best = torch.topk(group_scores, k=topk_group, dim=-1, sorted=False).indices
    keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, best, True)
    return keep.unsqueeze(-1).expand(n, n_group, e // n_group).reshape(n, e)


def deepseek_v2(
    logits: torch.Tensor, k: int, *, method: str, n_group: int | None, topk_group: int | None, scaling: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V2: softmax scores, greedy or group-limited-greedy top-k, weights times the scaling factor
    (no renormalisation)."""
    scores = torch.softmax(logits.float(), dim=-1)
    if method == "group_limited_greedy":
        scores = scores.masked_fill(~_group_mask(scores, n_group, topk_group, "max"), 0.0)
    elif method != "greedy":
        raise ValueError(f"deepseek_v2 topk_method={method!r} is not supported (greedy, group_limited_greedy)")
    weights, indices = torch.topk(scores, k=k, dim=-1)
    return weights * scaling, indices


def deepseek_v3(
    logits: torch.Tensor,
    k: int,
    *,
    correction_bias: torch.Tensor,
    n_group: int,
    topk_group: int,
    normalize: bool,
    scaling: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3: sigmoid scores; the correction bias only steers the choice (groups by top-2 sum, then
    top-k); the weights are the un-biased sigmoid scores, renormalised when asked, times the scaling factor."""
    scores = torch.sigmoid(logits.float())
    choice = scores + correction_bias.float()
    choice = choice.masked_fill(~_group_mask(choice, n_group, topk_group, "top2sum"), float("-inf"))
    indices = torch.topk(choice, k=k, dim=-1).indices
    weights = scores.gather(1, indices)
    if normalize:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights * scaling, indices
