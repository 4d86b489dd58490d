"""Synthetic, internally consistent routing (no model needed): for tests, demos and benchmarks.

Every token gets random router logits; top-k ids, renormalised top-k weights and the full softmax
follow from them, and every aggregate is computed from those per-token values, so all store
invariants hold by construction. The global sequence list is ordered language by language; the
``sequences`` argument keeps a subset of it (e.g. one shard), with aggregates over that subset only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polyroute.routing.records import ShardRouting


def synthetic_shard(
    seed: int = 0,
    languages: Sequence[str] = ("eng_Latn", "fra_Latn", "zho_Hans"),
    seqs_per_language: int = 4,
    layers: Sequence[int] = (0, 1, 2),
    num_experts: int = 8,
    top_k: int = 2,
    max_tokens: int = 12,
    per_token: bool = True,
    sequences: slice | np.ndarray | None = None,
) -> ShardRouting:
    """Random but consistent routing for ``len(languages) * seqs_per_language`` sequences.

    Sequence j of language g has parallel id ``p<j>``; lengths are 1..max_tokens. ``sequences``
    selects a subset of the global sequence list (languages keep their full list, possibly with 0
    tokens). Token logits are drawn per sequence from a generator seeded by (seed, sequence), so a
    sequence's routing does not depend on which subset it lands in.
    """
    G, L, E, k = len(languages), len(layers), num_experts, top_k
    n_seq = G * seqs_per_language
    chosen = np.arange(n_seq)[sequences] if sequences is not None else np.arange(n_seq)
    lang_of = chosen // seqs_per_language
    lengths = np.random.default_rng([seed, 0]).integers(1, max_tokens + 1, size=n_seq)[chosen]
    # language-dependent bias so languages really route differently
    bias = np.random.default_rng([seed, 1]).normal(0.0, 1.5, size=(G, L, E))

    ids_parts, w_parts, p_parts, tok_parts = [], [], [], []
    for s, g, n in zip(chosen, lang_of, lengths):
        rng = np.random.default_rng([seed, 2, int(s)])
        logits = rng.normal(size=(int(n), L, E)) + bias[g]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ids = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
        top = np.take_along_axis(probs, ids, axis=-1)
        ids_parts.append(ids)
        w_parts.append(top / top.sum(-1, keepdims=True))
        p_parts.append(probs)
        tok_parts.append(rng.integers(0, 32000, size=len(ids)))
    S = len(chosen)
    cat = (lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape))
    ids = cat(ids_parts, (0, L, k)).astype(np.int64)
    weights = cat(w_parts, (0, L, k))
    probs = cat(p_parts, (0, L, E))
    token_sequence = np.repeat(np.arange(S), lengths)
    token_lang = lang_of[token_sequence] if S else np.zeros(0, np.int64)

    onehot = np.zeros((len(ids), L, E))
    gate = np.zeros((len(ids), L, E))
    np.put_along_axis(onehot, ids, 1.0, axis=-1)
    np.put_along_axis(gate, ids, weights, axis=-1)
    count = np.zeros((G, L, E), np.int64)
    gate_sum = np.zeros((G, L, E))
    prob_sum = np.zeros((G, L, E))
    np.add.at(count, token_lang, onehot.astype(np.int64))
    np.add.at(gate_sum, token_lang, gate)
    np.add.at(prob_sum, token_lang, probs)
    seq_count = np.zeros((S, L, E), np.float32)
    seq_gate = np.zeros((S, L, E), np.float32)
    seq_prob = np.zeros((S, L, E), np.float32)
    np.add.at(seq_count, token_sequence, onehot.astype(np.float32))
    np.add.at(seq_gate, token_sequence, gate.astype(np.float32))
    np.add.at(seq_prob, token_sequence, probs.astype(np.float32))
    return ShardRouting(
        languages=list(languages),
        layers=list(layers),
        num_experts=E,
        top_k=k,
        count=count,
        gate_sum=gate_sum,
        prob_sum=prob_sum,
        tokens=np.bincount(token_lang, minlength=G).astype(np.int64),
        seq_id=np.array([f"{languages[g]}-{s % seqs_per_language}" for s, g in zip(chosen, lang_of)], dtype=object),
        seq_language=np.array([languages[g] for g in lang_of], dtype=object),
        seq_parallel_id=np.array([f"p{s % seqs_per_language}" for s in chosen], dtype=object),
        seq_tokens=lengths.astype(np.int64),
        seq_count=seq_count,
        seq_gate_sum=seq_gate,
        seq_prob_sum=seq_prob,
        expert_ids=ids.astype(np.uint8 if E <= 256 else np.uint16) if per_token else None,
        expert_weights=weights.astype(np.float16) if per_token else None,
        token_id=np.concatenate(tok_parts).astype(np.int32) if per_token and S else (np.zeros(0, np.int32) if per_token else None),
        token_sequence=token_sequence.astype(np.int64) if per_token else None,
    )
