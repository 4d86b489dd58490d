"""Routing distributions from a routing store (METHODS section 2): frequency, hard and soft distributions."""

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


def sequence_distribution(block: np.ndarray, seq_tokens: np.ndarray, top_k: int, source: str) -> np.ndarray:
    """Per-sequence distributions of a block [S, L, E] of seq_count (hard) or seq_prob_sum (soft).

    Sequences with no tokens give NaN rows, so callers can skip them. Keeps the block's float dtype.
    """
    block = np.asarray(block)
    block = block if np.issubdtype(block.dtype, np.floating) else block.astype(np.float64)
    denom = np.asarray(seq_tokens, dtype=np.float64) * (top_k if source == "hard" else 1)
    scale = np.where(denom > 0, 1.0 / np.where(denom > 0, denom, 1.0), np.nan).astype(block.dtype)
    return block * scale[:, None, None]


def sequence_distributions(ds: xr.DataArray | xr.Dataset, source: str = "hard") -> xr.DataArray:
    """All per-sequence distributions (sequence, layer, expert) in memory: for small stores and notebooks.

    compute_stats streams them in chunks instead (see `parallel.py`).
    """
    _check_source(source)
    var = "seq_count" if source == "hard" else "seq_prob_sum"
    arr = ds[var]
    values = sequence_distribution(arr.values.astype(np.float64), ds["seq_tokens"].values, int(ds.attrs["top_k"]), source)
    return arr.copy(data=values).rename(f"seq_distribution_{source}")


def _check_source(source: str) -> None:
    if source not in ("hard", "soft"):
        raise ValueError(f"distribution source {source!r} must be 'hard' or 'soft'")
