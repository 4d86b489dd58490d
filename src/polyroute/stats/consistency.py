"""Token routing consistency (Bandarkar; their definition is not published, this is ours).

consistency[g, l] = mean over pairs of consecutive tokens (t, t+1) of the same sequence of language g
of |top-k_t ∩ top-k_{t+1}| / k. Pairs are pooled over all sequences of a language (each pair weighs
the same). Tokens of a sequence are assumed contiguous and in order along `token`, as the store writes
them; `token_sequence` indexes the `sequence` dimension by position.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from polyroute.stats.sequences import accumulate_by_language, as_mean, chunk_slices, language_index, values

PER_TOKEN_VARS = ("expert_ids", "token_sequence", "seq_language")
ABSENT_NOTE = "per-token expert ids absent from the routing store (extraction.per_token: false): consistency is NaN"


def topk_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a ∩ b| per row for id arrays [..., k] with distinct ids per row, without one-hot vectors."""
    inter = np.zeros(a.shape[:-1], dtype=np.int16)
    for j in range(b.shape[-1]):  # k small passes keep the temporary at [..., k] booleans
        inter += (a == b[..., j : j + 1]).any(axis=-1)
    return inter


def routing_consistency(ds: xr.Dataset, *, chunk: int = 2**15) -> xr.DataArray:
    """Consistency (language, layer) from per-token `expert_ids`; all NaN with attr `note` when absent."""
    coords = {"language": ds["language"].values, "layer": ds["layer"].values}
    shape = (ds.sizes["language"], ds.sizes["layer"])
    attrs = {
        "long_name": "token routing consistency",
        "formula": "mean over consecutive tokens of a sequence of |topk_t ∩ topk_t+1| / k",
        "aggregation": "pooled over consecutive token pairs of the language",
    }
    if any(n not in ds.variables for n in PER_TOKEN_VARS):
        return xr.DataArray(np.full(shape, np.nan), dims=("language", "layer"), coords=coords, attrs={**attrs, "note": ABSENT_NOTE})

    k = ds.sizes["topk"]
    seq_lang = language_index(values(ds, "seq_language"), np.asarray(ds["language"].values))
    sums = np.zeros(shape)
    counts = np.zeros(shape, dtype=np.int64)
    n_tok = ds.sizes["token"]
    for sl in chunk_slices(n_tok, chunk):
        # one token of overlap with the previous chunk so pairs across the boundary are counted
        lo = max(sl.start - 1, 0)
        ids = values(ds, "expert_ids", slice(lo, sl.stop))
        seq = values(ds, "token_sequence", slice(lo, sl.stop))
        same = seq[1:] == seq[:-1]
        if not same.any():
            continue
        inter = topk_intersection(ids[:-1][same], ids[1:][same]).astype(np.float64) / k
        accumulate_by_language(sums, counts, seq_lang[seq[:-1][same]], inter)
    return xr.DataArray(as_mean(sums, counts), dims=("language", "layer"), coords=coords, attrs=attrs)
