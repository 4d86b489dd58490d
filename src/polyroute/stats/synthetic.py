"""Synthetic routing stores with known structure, for tests, benchmarks and trying the figures.

Routing preferences follow a U-shape over depth (languages differ most in the first and last layers)
and a family structure (languages of one family route, and tokenise, alike). Aggregates always satisfy
the store invariant sum_i count[g, l, i] == k * T_g exactly.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def synthetic_store(
    n_languages: int = 6,
    n_layers: int = 8,
    n_experts: int = 16,
    top_k: int = 2,
    seqs_per_language: int = 10,
    tokens_per_seq: tuple[int, int] = (4, 12),
    *,
    per_token: bool = True,
    n_families: int = 3,
    vocab_size: int = 500,
    seed: int = 0,
) -> xr.Dataset:
    """A routing store (DESIGN.md names and dtypes) for `n_languages` x `seqs_per_language` parallel sequences.

    With per_token=True the per-token top-k ids are sampled (Gumbel top-k) and every aggregate is
    derived from them; otherwise per-sequence counts are multinomial draws (same invariant, no ids).
    """
    if top_k > n_experts:
        raise ValueError(f"top_k={top_k} exceeds n_experts={n_experts}")
    rng = np.random.default_rng(seed)
    G, L, E, k = n_languages, n_layers, n_experts, top_k
    languages = [f"l{g:03d}_Synt" for g in range(G)]
    family = np.arange(G) % n_families
    depth = np.linspace(-1.0, 1.0, L) if L > 1 else np.zeros(1)
    spread = 0.3 + 2.0 * depth**2  # U-shape: language differences largest at both ends
    base = rng.normal(0, 1.0, (L, E))
    fam_dev = rng.normal(0, 1.0, (n_families, L, E))
    own_dev = rng.normal(0, 0.5, (G, L, E))
    logits = (base[None] + spread[None, :, None] * (fam_dev[family] + own_dev)).astype(np.float32)

    S = G * seqs_per_language
    seq_lang = np.repeat(np.arange(G), seqs_per_language)
    seq_pid = np.tile(np.arange(seqs_per_language), G)
    seq_tokens = rng.integers(tokens_per_seq[0], tokens_per_seq[1] + 1, S).astype(np.int64)
    probs = _softmax(logits)  # [G, L, E]
    seq_prob = _softmax(logits[seq_lang] + rng.normal(0, 0.3, (S, L, E)).astype(np.float32))
    seq_prob_sum = (seq_prob * seq_tokens[:, None, None]).astype(np.float32)

    data: dict[str, tuple] = {}
    if per_token:
        token_sequence = np.repeat(np.arange(S), seq_tokens)
        N = len(token_sequence)
        id_dtype = np.uint8 if E <= 256 else np.uint16
        ids = np.empty((N, L, k), dtype=id_dtype)
        seq_count = np.zeros((S, L, E), dtype=np.float32)
        for start in range(0, N, 4096):  # chunks keep the [n, L, E] Gumbel noise small
            stop = min(start + 4096, N)
            ts = token_sequence[start:stop]
            z = logits[seq_lang[ts]] + rng.gumbel(size=(stop - start, L, E)).astype(np.float32)
            top = np.argpartition(-z, k - 1, axis=-1)[..., :k]
            ids[start:stop] = top
            onehot_rows = np.zeros((stop - start, L, E), dtype=np.float32)
            np.put_along_axis(onehot_rows, top, 1.0, axis=-1)
            np.add.at(seq_count, ts, onehot_rows)
        weights = rng.random((N, L, k)).astype(np.float16)
        zipf = np.minimum(rng.zipf(1.3, N), vocab_size // 2) - 1
        token_id = ((zipf + family[seq_lang[token_sequence]] * (vocab_size // (2 * n_families))) % vocab_size).astype(np.int32)
        data.update(
            expert_ids=(("token", "layer", "topk"), ids),
            expert_weights=(("token", "layer", "topk"), weights),
            token_id=(("token",), token_id),
            token_sequence=(("token",), token_sequence.astype(np.int64)),
        )
    else:
        seq_count = rng.multinomial(k * seq_tokens[:, None], probs[seq_lang]).astype(np.float32)

    # used weights: on the chosen experts, in proportion to the sequence's routing probability, each
    # token's k weights summing to 1 (a renormalised top-k)
    chosen = seq_count * seq_prob
    seq_gate_sum = (chosen / chosen.sum(axis=-1, keepdims=True) * seq_tokens[:, None, None]).astype(np.float32)

    count = np.zeros((G, L, E), dtype=np.int64)
    np.add.at(count, seq_lang, seq_count.astype(np.int64))
    prob_sum = np.zeros((G, L, E))
    np.add.at(prob_sum, seq_lang, seq_prob_sum.astype(np.float64))
    gate_sum = np.zeros((G, L, E))
    np.add.at(gate_sum, seq_lang, seq_gate_sum.astype(np.float64))
    tokens = np.bincount(seq_lang, weights=seq_tokens, minlength=G).astype(np.int64)

    data.update(
        count=(("language", "layer", "expert"), count),
        gate_sum=(("language", "layer", "expert"), gate_sum),
        prob_sum=(("language", "layer", "expert"), prob_sum),
        tokens=(("language",), tokens),
        seq_count=(("sequence", "layer", "expert"), seq_count),
        seq_gate_sum=(("sequence", "layer", "expert"), seq_gate_sum),
        seq_prob_sum=(("sequence", "layer", "expert"), seq_prob_sum),
        seq_language=(("sequence",), np.array(languages)[seq_lang]),
        seq_tokens=(("sequence",), seq_tokens),
        seq_parallel_id=(("sequence",), np.array([f"p{i}" for i in seq_pid])),
    )
    return xr.Dataset(
        data,
        coords={"language": languages, "layer": np.arange(L), "expert": np.arange(E)},
        attrs={"model": "synthetic", "num_experts": E, "top_k": k, "dataset": "synthetic", "seed": seed},
    )
