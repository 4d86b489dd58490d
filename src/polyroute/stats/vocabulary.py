"""Vocabulary overlap between languages and its link with routing similarity (Khandelwal).

overlap(g, h) = sum_v min(u_g(v), u_h(v)) where u_g(v) is the share of g's recorded tokens that have
vocabulary id v: the share of token mass the two languages have in common (1 = same token histogram,
0 = disjoint vocabularies).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from polyroute.stats.correlation import STATISTICS, pair_correlation
from polyroute.stats.sequences import chunk_slices, language_index, values

PER_TOKEN_VARS = ("token_id", "token_sequence", "seq_language")
ABSENT_NOTE = "per-token token_id absent from the routing store (extraction.per_token: false): overlap is NaN"


def token_histograms(ds: xr.Dataset, *, chunk: int = 2**18) -> tuple[np.ndarray, np.ndarray]:
    """Per-language token shares over the vocabulary ids present: (shares [G, V'], vocabulary ids [V']).

    Streams `token_id` in chunks and keeps only (language, id) pairs that occur, never a G x vocab grid
    of the whole vocabulary.
    """
    languages = np.asarray(ds["language"].values)
    seq_lang = language_index(values(ds, "seq_language"), languages)
    keys, cnts = [], []
    for sl in chunk_slices(ds.sizes["token"], chunk):
        lang = seq_lang[values(ds, "token_sequence", sl)]
        tok = values(ds, "token_id", sl).astype(np.int64)
        key = (lang.astype(np.int64) << 32) | tok
        u, c = np.unique(key[lang >= 0], return_counts=True)
        keys.append(u)
        cnts.append(c)
    key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    cnt = np.concatenate(cnts) if cnts else np.zeros(0, np.int64)
    key, inv = np.unique(key, return_inverse=True)
    cnt = np.bincount(inv.ravel(), weights=cnt, minlength=len(key))
    lang, tok = key >> 32, key & 0xFFFFFFFF
    vocab, col = np.unique(tok, return_inverse=True)
    hist = np.zeros((len(languages), len(vocab)), dtype=np.float64)
    hist[lang, col.ravel()] = cnt
    total = hist.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(total > 0, hist / np.where(total > 0, total, 1.0), np.nan)
    return shares, vocab


def vocabulary_overlap(ds: xr.Dataset, *, chunk: int = 2**18) -> xr.DataArray:
    """Pairwise share of token mass in common, dims (language, language_b); NaN with `note` when absent."""
    langs = ds["language"].values
    coords = {"language": langs, "language_b": langs}
    attrs = {"long_name": "vocabulary overlap", "formula": "sum_v min(u_g(v), u_h(v)), u = token share", "range": "0..1"}
    if any(n not in ds.variables for n in PER_TOKEN_VARS):
        n = len(langs)
        return xr.DataArray(np.full((n, n), np.nan), dims=("language", "language_b"), coords=coords, attrs={**attrs, "note": ABSENT_NOTE})
    shares, _ = token_histograms(ds, chunk=chunk)
    shares = shares.astype(np.float32)  # halves the pairwise pass; sums of <= 1 stay accurate to 1e-6
    out = np.empty((len(langs), len(langs)))
    for g in range(len(langs)):
        out[g] = np.minimum(shares[g], shares).sum(axis=1, dtype=np.float64)
    return xr.DataArray(out, dims=("language", "language_b"), coords=coords, attrs=attrs)


def vocabulary_similarity_correlation(overlap: xr.DataArray, similarity: xr.DataArray) -> xr.DataArray:
    """Per layer, correlation over language pairs (g < h) of vocabulary overlap with routing similarity.

    Dims (layer, statistic) with statistic = pearson_r, pearson_p, spearman_rho, spearman_p, n.
    """
    n = overlap.sizes["language"]
    iu = np.triu_indices(n, k=1)
    ov = overlap.transpose("language", "language_b").values[iu]
    sim = similarity.transpose("language", "language_b", "layer").values[iu]  # [pairs, L]
    rows = [[pair_correlation(ov, sim[:, l])[s] for s in STATISTICS] for l in range(sim.shape[1])]
    return xr.DataArray(
        np.array(rows, dtype=np.float64).reshape(sim.shape[1], len(STATISTICS)),
        dims=("layer", "statistic"),
        coords={"layer": similarity["layer"].values, "statistic": list(STATISTICS)},
        attrs={"long_name": "correlation of vocabulary overlap with routing similarity over language pairs"},
    )
