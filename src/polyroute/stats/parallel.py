"""Entropy-normalised divergence from the reference averaged over parallel sequences (Bandarkar).

Each sequence of language g is compared with the reference-language sequence that has the same
`seq_parallel_id` (its translation); D is computed per sequence pair and layer and averaged over pairs,
as Bandarkar et al.'s code does (`pairwise_mean_jsd` in their `analysis_helpers.py`), by default on the
per-sequence used-weight distributions U (source "used"). This differs from the pooled `divergence`,
which compares distributions summed over all tokens.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from polyroute.stats._core import entropy_nats, jsd_from_entropies, normalised_divergence
from polyroute.stats.distributions import SEQUENCE_VARIABLE, _check_source, sequence_distribution
from polyroute.stats.information import check_language
from polyroute.stats.sequences import accumulate_by_language, as_mean, chunk_slices, language_index, values

SEQUENCE_LABELS = ("seq_language", "seq_tokens", "seq_parallel_id")


def per_sequence_vars(source: str) -> tuple[str, ...]:
    """The routing-store variables `divergence_parallel` reads for a distribution source."""
    _check_source(source)
    return (SEQUENCE_VARIABLE[source], *SEQUENCE_LABELS)


def divergence_parallel(
    ds: xr.Dataset, reference: str, *, source: str = "used", chunk: int = 512
) -> xr.Dataset:
    """Mean over parallel sequence pairs of D(ref sequence, sequence), dims (language, layer).

    `source`: "used" (default, Bandarkar's code: the routing weights the model applied), "hard"
    (top-k counts) or "soft" (full softmax). Returns `divergence_parallel` (NaN for a language without
    any translated pair) and `divergence_parallel_pairs(language)` (number of pairs). Memory: the
    reference sequences plus one chunk of `chunk` sequences. A parallel id repeated in the reference
    language uses its first sequence.
    """
    check_language(ds, reference, "reference language")
    missing = [n for n in per_sequence_vars(source) if n not in ds.variables]
    if missing:
        raise ValueError(f"routing store lacks per-sequence variable(s) {missing} needed for divergence_parallel "
                         f"from the {source!r} distribution")
    var = SEQUENCE_VARIABLE[source]
    top_k = int(ds.attrs["top_k"])
    languages = np.asarray(ds["language"].values).astype(str)
    n_lang, n_layer, n_exp = len(languages), ds.sizes["layer"], ds.sizes["expert"]

    seq_lang = language_index(values(ds, "seq_language"), languages)
    pid = values(ds, "seq_parallel_id").astype(str)
    seq_tokens = values(ds, "seq_tokens")
    ref_idx = np.flatnonzero(seq_lang == languages.tolist().index(reference))
    ref_pid, first = np.unique(pid[ref_idx], return_index=True)
    ref_idx = ref_idx[first]
    # reference sequences, loaded once (sorted indices keep zarr reads sequential)
    order = np.argsort(ref_idx)
    # float32 like the store: logs run twice as fast; entropies are still summed in float64
    ref_dist = np.empty((len(ref_idx), n_layer, n_exp), dtype=np.float32)
    if len(ref_idx):
        ref_dist[order] = sequence_distribution(
            ds[var].variable[ref_idx[order]].values, seq_tokens[ref_idx[order]], top_k, source
        )
    ref_h = entropy_nats(ref_dist)

    sums = np.zeros((n_lang, n_layer))
    counts = np.zeros((n_lang, n_layer), dtype=np.int64)
    pairs = np.zeros(n_lang, dtype=np.int64)
    ref_lang = languages.tolist().index(reference)
    for sl in chunk_slices(ds.sizes["sequence"], chunk):
        lang = seq_lang[sl]
        if not len(ref_pid):
            break  # no reference sequences: every language stays NaN
        pos = np.clip(np.searchsorted(ref_pid, pid[sl]), 0, len(ref_pid) - 1)
        has = (lang >= 0) & (lang != ref_lang) & (ref_pid[pos] == pid[sl])
        if not has.any():
            continue
        keep = np.flatnonzero(has)
        dist = sequence_distribution(values(ds, var, sl)[keep], seq_tokens[sl][keep], top_k, source)
        r, rh, h = ref_dist[pos[keep]], ref_h[pos[keep]], entropy_nats(dist)
        d = normalised_divergence(jsd_from_entropies(r, dist, rh, h), rh, h, n_exp)
        accumulate_by_language(sums, counts, lang[keep], d)
        np.add.at(pairs, lang[keep], 1)

    mean = as_mean(sums, counts)
    mean[ref_lang] = 0.0  # the reference against itself, by definition
    coords = {"language": ds["language"].values, "layer": ds["layer"].values}
    return xr.Dataset(
        {
            "divergence_parallel": xr.DataArray(
                mean,
                dims=("language", "layer"),
                coords=coords,
                attrs={
                    "long_name": "entropy-normalised divergence from the reference (mean over parallel sequences)",
                    "formula": "mean over parallel pairs of JSD(P_r,s, P_g,s) / (ln E - (H_r,s + H_g,s) / 2)",
                    "reference": reference,
                    "distribution": source,
                    "source": "Bandarkar et al., pairwise_mean_jsd over per-sequence distributions",
                },
            ),
            "divergence_parallel_pairs": xr.DataArray(
                pairs, dims=("language",), coords={"language": ds["language"].values},
                attrs={"long_name": "parallel sequence pairs averaged"},
            ),
        }
    )
