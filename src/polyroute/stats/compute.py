"""compute_stats: the statistics store of DESIGN.md from a routing store, and its CSV tables."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from polyroute.stats import experts
from polyroute.stats.consistency import routing_consistency
from polyroute.stats.correlation import as_score, score_correlation
from polyroute.stats.distributions import (
    _check_source,
    check_routing_store,
    frequency,
    hard_distribution,
    SEQUENCE_VARIABLE,
    pooled_distribution,
    soft_distribution,
)
from polyroute.stats.information import check_language, check_log_base, divergence_from_reference, entropy, similarity, specialisation
from polyroute.stats.parallel import divergence_parallel, per_sequence_vars
from polyroute.stats.vocabulary import vocabulary_overlap, vocabulary_similarity_correlation

# routing-store attrs worth carrying into the statistics store (provenance)
CARRIED_ATTRS = ("model", "model_id", "revision", "model_type", "dataset", "split", "num_experts", "top_k", "config_hash",
                 "model_revision", "revision_label", "training_step", "training_tokens")


def compute_stats(
    routing: xr.Dataset,
    *,
    reference: str,
    log_base: float | str = float(np.e),
    source: str = "hard",
    divergence_source: str = "used",
    scores: Mapping[str, float] | xr.DataArray | None = None,
    top_m: int = 15,
    theta: float = 0.4,
    sequence_chunk: int = 512,
    token_chunk: int = 2**15,
) -> xr.Dataset:
    """All routing statistics (METHODS 2-4) as one Dataset with the names of the statistics-store contract.

    `source` picks the distribution ("hard" = count / (k T), "soft" = prob_sum / T, "used" =
    gate_sum normalised) behind entropy and similarity; `divergence_source` the one behind Bandarkar's
    divergence from the reference (`jsd`, `divergence`, `divergence_parallel`), by default "used": the
    routing weights the model applied, as Bandarkar et al.'s code (METHODS 2-3). `scores` (e.g.
    Belebele accuracy per language) adds `score` and its correlation with middle-layer divergence. Per-sequence and per-token arrays are streamed in
    chunks of `sequence_chunk` sequences and `token_chunk` tokens.
    """
    base = check_log_base(log_base)
    _check_source(source)
    _check_source(divergence_source)
    check_routing_store(routing)
    per_sequence = per_sequence_vars(divergence_source)
    has_sequences = any(n in routing.variables for n in SEQUENCE_VARIABLE.values())
    if has_sequences and per_sequence[0] not in routing.variables:
        raise ValueError(f"routing store lacks {per_sequence[0]} for the {divergence_source!r} divergence input "
                         "(extracted by an older polyroute?): extract it again, or choose another divergence input")
    check_language(routing, reference, "reference language")
    if int(top_m) < 1:
        raise ValueError(f"top_m={top_m!r} must be >= 1 (it is clipped to the number of experts)")
    if not 0 <= float(theta) < 1:
        raise ValueError(f"theta={theta!r} must lie in [0, 1)")
    score = as_score(scores, routing["language"].values) if scores is not None else None

    top_k = int(routing.attrs["top_k"])
    count = routing["count"].load()
    tokens = routing["tokens"].load()
    freq = frequency(count, tokens)
    hard = hard_distribution(count, tokens, top_k)
    soft = soft_distribution(routing["prob_sum"].load(), tokens)
    dist = pooled_distribution(routing, source)

    out = xr.Dataset(
        {
            "tokens": tokens,
            "frequency": freq,
            "distribution": hard,
            "distribution_soft": soft,
            "entropy": entropy(dist, log_base=base),
            "entropy_normalised": entropy(dist, normalise=True),
            "similarity": similarity(dist),
            "specialisation": specialisation(count),
            "consistency": routing_consistency(routing, chunk=token_chunk),
        }
    )
    out = out.merge(divergence_from_reference(pooled_distribution(routing, divergence_source), reference))
    out["divergence"].attrs["distribution"] = divergence_source
    if all(n in routing.variables for n in per_sequence):
        out = out.merge(divergence_parallel(routing, reference, source=divergence_source, chunk=sequence_chunk))
    out["vocab_overlap"] = vocabulary_overlap(routing)
    if np.isfinite(out["vocab_overlap"].values).any():
        out["vocab_similarity_correlation"] = vocabulary_similarity_correlation(out["vocab_overlap"], out["similarity"])

    w = experts.affinity(count, tokens, top_m=int(top_m))
    out["affinity"] = w
    out["expert_class"] = experts.expert_classes(w, theta=float(theta))
    out["specificity"] = xr.concat(
        [experts.specificity(freq, str(g)) for g in freq["language"].values], dim=freq["language"]
    ).transpose("language", "layer", "expert")
    out["overlap"] = experts.overlap(freq)

    if score is not None:
        out["score"] = score
        out["score_correlation"] = score_correlation(out["divergence"], score, reference=reference)

    out.attrs = {
        **{k: _plain(routing.attrs[k]) for k in CARRIED_ATTRS if k in routing.attrs},
        "log_base": base,
        "entropy_normalisation": "entropy / log(num_experts)",
        "jsd_units": "nats",
        "reference_language": reference,
        "distribution_source": source,
        "divergence_source": divergence_source,
        "thresholds": {"top_m": int(top_m), "theta": float(theta)},
        "consistency_note": out["consistency"].attrs.get("note", "computed from per-token expert ids"),
    }
    return out


def _plain(v: object) -> object:
    """numpy scalars -> Python scalars so attrs serialise to Zarr JSON."""
    return v.item() if isinstance(v, np.generic) else v


def tables(stats: xr.Dataset) -> dict[str, pd.DataFrame]:
    """Long-format tables of a statistics dataset, one DataFrame per CSV file (name -> frame)."""
    out: dict[str, pd.DataFrame] = {}
    per_lang_layer = [v for v in ("entropy", "entropy_normalised", "jsd", "divergence", "divergence_parallel", "consistency") if v in stats]
    out["language_layer"] = stats[per_lang_layer].to_dataframe().reset_index()
    out["layer"] = stats[["specialisation"]].to_dataframe().reset_index()
    per_lang = [v for v in ("tokens", "score", "divergence_parallel_pairs") if v in stats]
    out["language"] = stats[per_lang].to_dataframe().reset_index()

    sim = stats["similarity"].to_dataframe().reset_index()
    order = {g: i for i, g in enumerate(stats["language"].values)}
    keep = sim["language"].map(order) < sim["language_b"].map(order)  # each unordered pair once
    out["similarity"] = sim[keep].reset_index(drop=True)

    cls = stats["expert_class"]
    out["expert_classes"] = pd.DataFrame(
        {
            "exclusive": (cls == 2).sum("expert").to_series(),
            "shared": (cls == 1).sum("expert").to_series(),
            "unused": (cls == 0).sum("expert").to_series(),
        }
    ).reset_index()
    if np.isfinite(stats["vocab_overlap"].values).any():
        vo = stats["vocab_overlap"].to_dataframe().reset_index()
        out["vocab_overlap"] = vo[vo["language"].map(order) < vo["language_b"].map(order)].reset_index(drop=True)
    for name in ("vocab_similarity_correlation", "score_correlation"):
        if name in stats:
            frame = stats[name].to_pandas()
            out[name] = (frame.to_frame(name="value") if isinstance(frame, pd.Series) else frame).reset_index()
    return out


def write_tables(frames: Mapping[str, pd.DataFrame], directory: str | os.PathLike) -> list[str]:
    """Write each table to <directory>/<name>.csv atomically; return the paths written."""
    from polyroute.atomic import atomic_write_text

    paths = []
    for name, frame in frames.items():
        path = os.path.join(directory, f"{name}.csv")
        atomic_write_text(path, frame.to_csv(index=False))
        paths.append(path)
    return paths
