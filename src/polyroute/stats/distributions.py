"""Routing distributions from a routing store (METHODS section 2): frequency, and the three
distribution sources over experts, pooled per language or per sequence:
- "hard": top-k counts / (k T) (Chen, Khandelwal);
- "soft": the mean full softmax (what Bandarkar et al.'s code marks deprecated);
- "used": the routing weights the model applied (top-k, after its own normalisation), summed and
  normalised to 1: U = sum_t w_t / sum(sum_t w_t), the input of Bandarkar et al.'s divergence
  (`calculate_total_actual_weight_per_sequence` in their `get_routing_weights.py`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

REQUIRED_AGGREGATES = ("count", "prob_sum", "tokens")


def check_routing_store(ds: xr.Dataset, names: tuple[str, ...] = REQUIRED_AGGREGATES) -> None:
    """Raise a one-line ValueError when the store lacks a variable, the top_k attr, or has empty languages."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"routing store lacks variable(s) {missing}; has {sorted(ds.data_vars)}")
    if "top_k" not in ds.attrs:
        raise ValueError("routing store lacks the 'top_k' attribute")
    if int(ds.attrs["top_k"]) < 1:
        raise ValueError(f"routing store attribute top_k={ds.attrs['top_k']!r} must be >= 1")
    if "tokens" in names:
        tokens = np.asarray(ds["tokens"].values)
        if (tokens <= 0).any():
            bad = [str(g) for g in np.asarray(ds["language"].values)[tokens <= 0]]
            raise ValueError(f"language(s) {bad} have no tokens in the routing store")


def frequency(count: xr.DataArray, tokens: xr.DataArray) -> xr.DataArray:
    """Activation frequency a = count / T (RISE, Khandelwal): each (language, layer) row sums to k."""
    out = count.astype(np.float64) / tokens
    out.attrs = {"long_name": "activation frequency", "formula": "count / tokens"}
    return out.rename("frequency")


def hard_distribution(count: xr.DataArray, tokens: xr.DataArray, top_k: int) -> xr.DataArray:
    """Hard routing distribution P = count / (k T): each (language, layer) row sums to 1."""
    out = count.astype(np.float64) / (top_k * tokens)
    out.attrs = {"long_name": "routing distribution (hard, top-k counts)", "formula": "count / (top_k * tokens)"}
    return out.rename("distribution")


def soft_distribution(prob_sum: xr.DataArray, tokens: xr.DataArray) -> xr.DataArray:
    """Soft routing distribution Q = prob_sum / T (Bandarkar): mean full softmax over tokens."""
    out = prob_sum.astype(np.float64) / tokens
    out.attrs = {"long_name": "routing distribution (soft, mean softmax)", "formula": "prob_sum / tokens"}
    return out.rename("distribution_soft")


def used_distribution(gate_sum: xr.DataArray) -> xr.DataArray:
    """Used-weight distribution U = gate_sum / sum_i gate_sum (Bandarkar's input): each row sums to 1.

    Normalised by its own sum, not by T: models that do not renormalise their top-k weights (OLMoE)
    apply weights summing to less than 1 per token."""
    total = gate_sum.sum("expert")
    out = (gate_sum.astype(np.float64) / total.where(total > 0)).fillna(0.0)
    out.attrs = {"long_name": "routing distribution (used weights)", "formula": "gate_sum / sum_i gate_sum"}
    return out.rename("distribution_used")


def pooled_distribution(routing: xr.Dataset, source: str) -> xr.DataArray:
    """The pooled (per language) distribution of `source` from a routing store's aggregates."""
    _check_source(source)
    tokens = routing["tokens"].load()
    if source == "hard":
        return hard_distribution(routing["count"].load(), tokens, int(routing.attrs["top_k"]))
    if source == "soft":
        return soft_distribution(routing["prob_sum"].load(), tokens)
    return used_distribution(routing["gate_sum"].load())


# the per-sequence variable behind each distribution source
SEQUENCE_VARIABLE = {"hard": "seq_count", "soft": "seq_prob_sum", "used": "seq_gate_sum"}


def sequence_distribution(block: np.ndarray, seq_tokens: np.ndarray, top_k: int, source: str) -> np.ndarray:
    """Per-sequence distributions of a block [S, L, E] of seq_count (hard), seq_prob_sum (soft) or
    seq_gate_sum (used, each row normalised by its own sum).

    Sequences with no tokens give NaN rows, so callers can skip them. Keeps the block's float dtype.
    """
    block = np.asarray(block)
    block = block if np.issubdtype(block.dtype, np.floating) else block.astype(np.float64)
    if source == "used":
        denom = block.sum(axis=-1, keepdims=True, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (block / np.where(denom > 0, denom, np.nan)).astype(block.dtype)
    denom = np.asarray(seq_tokens, dtype=np.float64) * (top_k if source == "hard" else 1)
    scale = np.where(denom > 0, 1.0 / np.where(denom > 0, denom, 1.0), np.nan).astype(block.dtype)
    return block * scale[:, None, None]


def sequence_distributions(ds: xr.DataArray | xr.Dataset, source: str = "hard") -> xr.DataArray:
    """All per-sequence distributions (sequence, layer, expert) in memory: for small stores and notebooks.

    compute_stats streams them in chunks instead (see `parallel.py`).
    """
    _check_source(source)
    arr = ds[SEQUENCE_VARIABLE[source]]
    values = sequence_distribution(arr.values.astype(np.float64), ds["seq_tokens"].values, int(ds.attrs["top_k"]), source)
    return arr.copy(data=values).rename(f"seq_distribution_{source}")


def _check_source(source: str) -> None:
    if source not in SEQUENCE_VARIABLE:
        raise ValueError(f"distribution source {source!r} must be one of {', '.join(map(repr, SEQUENCE_VARIABLE))}")
