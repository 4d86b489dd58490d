"""Each family's routing rule: router logits [N, E] -> (weights [N, k] float32, indices [N, k] int64).

Written from the transformers 5 router code of every family (read, not imported), so the routing a
model really used can be recomputed from logits alone: for reference checks and for interventions
that edit logits before the rule is applied. Inference (eval-mode) behaviour only: no jitter, no sampling.

Every rule also takes optional pins, bool masks broadcastable to [N, E] (polyroute.interventions):
`forced` experts are chosen before any other (at most k of them), `barred` ones never while k others
remain. Pins act on the family's own choice scores (after DeepSeek-V3's correction bias, before group
selection), so a pinned choice holds in every family; the weights stay the family's own function of the
logits. Without pins every rule is the model's, operation for operation.
"""

from __future__ import annotations

import torch

Mask = torch.Tensor | None


def pin(choice: torch.Tensor, forced: Mask = None, barred: Mask = None) -> torch.Tensor:
    """`choice` with forced experts above every other (+inf) and barred ones below (-inf)."""
    if forced is not None:
        choice = choice.masked_fill(forced, float("inf"))
    if barred is not None:
        choice = choice.masked_fill(barred, float("-inf"))
    return choice


def _top(values: torch.Tensor, k: int, forced: Mask, barred: Mask,
         choice: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k by `choice` (default: `values`) after pinning; returns (values at the picks, picks)."""
    choice = values if choice is None else choice
    if forced is None and barred is None and choice is values:
        return torch.topk(values, k, dim=-1)
    indices = torch.topk(pin(choice, forced, barred), k, dim=-1).indices
    return values.gather(-1, indices), indices


def softmax_topk(logits: torch.Tensor, k: int, normalize: bool, forced: Mask = None,
                 barred: Mask = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over all experts, then top-k; renormalise the k weights when `normalize` (Qwen, OLMoE, Mixtral)."""
    probs = torch.softmax(logits.float(), dim=-1)
    weights, indices = _top(probs, k, forced, barred)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, indices


def topk_softmax(logits: torch.Tensor, k: int, forced: Mask = None,
                 barred: Mask = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k on the logits, then softmax over the k chosen ones only (GPT-OSS)."""
    values, indices = _top(logits, k, forced, barred)
    return torch.softmax(values.float(), dim=-1), indices


def _sparsemixer_pick(scores: torch.Tensor, masked: torch.Tensor, jitter_eps: float, forced: Mask,
                      barred: Mask) -> tuple[torch.Tensor, torch.Tensor]:
    """One sparsemixer step: argmax of `masked` (pinned); its weight = softmax over experts within the
    jitter band of its logit."""
    if forced is None and barred is None:
        threshold, index = masked.max(dim=-1, keepdim=True)
    else:
        index = pin(masked, forced, barred).argmax(dim=-1, keepdim=True)
        threshold = masked.gather(-1, index)
    factor = scores.abs().clamp(min=threshold)
    outside = ((threshold - scores) / factor) > (2 * jitter_eps)
    gates = torch.softmax(masked.masked_fill(outside, float("-inf")).float(), dim=-1)
    return gates.gather(-1, index), index


def sparsemixer(logits: torch.Tensor, jitter_eps: float, forced: Mask = None,
                barred: Mask = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Phi-3.5-MoE's eval-mode sparsemixer (always 2 experts): each pick's weight is a softmax over the
    experts whose logit lies within a relative band 2*jitter_eps of that pick's logit."""
    w1, i1 = _sparsemixer_pick(logits, logits, jitter_eps, forced, barred)
    if forced is not None:  # the first pick is taken: only the other forced expert may still be pinned
        forced = forced.expand_as(logits).scatter(-1, i1, False)
    w2, i2 = _sparsemixer_pick(logits, torch.scatter(logits, -1, i1, float("-inf")), jitter_eps, forced, barred)
    return torch.cat((w1, w2), dim=-1), torch.cat((i1, i2), dim=-1)


def _group_mask(choice: torch.Tensor, n_group: int, topk_group: int, per_group: str) -> torch.Tensor:
    """Boolean [N, E] mask of experts in the `topk_group` best groups (DeepSeek group-limited routing)."""
    n, e = choice.shape
    grouped = choice.view(n, n_group, e // n_group)
    if per_group == "max":
        group_scores = grouped.max(dim=-1).values
    else:  # "top2sum", DeepSeek-V3
        group_scores = grouped.topk(2, dim=-1).values.sum(dim=-1)
    # a forced (+inf) and a barred (-inf) expert in one group sum to NaN: the forced one wins
    group_scores = group_scores.nan_to_num(nan=float("inf"), posinf=float("inf"), neginf=float("-inf"))
    best = torch.topk(group_scores, k=topk_group, dim=-1, sorted=False).indices
    keep = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, best, True)
    return keep.unsqueeze(-1).expand(n, n_group, e // n_group).reshape(n, e)


def deepseek_v2(
    logits: torch.Tensor, k: int, *, method: str, n_group: int | None, topk_group: int | None, scaling: float,
    forced: Mask = None, barred: Mask = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V2: softmax scores, greedy or group-limited-greedy top-k, weights times the scaling factor
    (no renormalisation)."""
    scores = torch.softmax(logits.float(), dim=-1)
    choice = scores
    if method == "group_limited_greedy":
        keep = _group_mask(pin(scores, forced, barred), n_group, topk_group, "max")
        scores = scores.masked_fill(~keep, 0.0)
        choice = scores if forced is None and barred is None else pin(scores, None, barred)
    elif method != "greedy":
        raise ValueError(f"deepseek_v2 topk_method={method!r} is not supported (greedy, group_limited_greedy)")
    weights, indices = _top(scores, k, forced, barred, choice)
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
    forced: Mask = None,
    barred: Mask = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DeepSeek-V3: sigmoid scores; the correction bias only steers the choice (groups by top-2 sum, then
    top-k); the weights are the un-biased sigmoid scores, renormalised when asked, times the scaling factor."""
    scores = torch.sigmoid(logits.float())
    choice = pin(scores + correction_bias.float(), forced, barred)
    choice = choice.masked_fill(~_group_mask(choice, n_group, topk_group, "top2sum"), float("-inf"))
    indices = torch.topk(choice, k=k, dim=-1).indices
    weights = scores.gather(1, indices)
    if normalize:
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
    return weights * scaling, indices
