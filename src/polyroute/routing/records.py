"""The in-memory routing records, the one hand-off between capture and the store.

`RoutingWindow` is what a routing pass hands out per window of consecutive sequences; `ShardRouting`
is a whole shard (joined windows, or synthetic data). Both hold host numpy arrays. The rules they
share live here once: the dtype of stored expert ids and the count invariant (METHODS 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_UINT8_EXPERTS = 256


def expert_id_dtype(num_experts: int) -> np.dtype:
    """The compact dtype of stored expert ids: uint8 for up to 256 experts, else uint16."""
    return np.dtype(np.uint8 if num_experts <= MAX_UINT8_EXPERTS else np.uint16)


def check_counts(count: np.ndarray, tokens: np.ndarray, top_k: int, languages: Sequence[str],
                 layers: Sequence[int]) -> None:
    """Raise if sum_i count[g, l, i] != k * tokens[g] for some language and layer (METHODS 1)."""
    per_layer = np.asarray(count).sum(axis=2)
    tokens = np.asarray(tokens)
    bad = np.argwhere(per_layer != top_k * tokens[:, None])
    if bad.size:
        g, l = bad[0]
        raise ValueError(
            f"routing invariant broken: language {languages[g]} layer {int(layers[l])} "
            f"counts {int(per_layer[g, l])} expert choices for {int(tokens[g])} tokens x k={top_k}"
        )


@dataclass
class RoutingWindow:
    """Routing of consecutive sequences ``start .. start + s`` of a shard, in the given order."""

    start: int
    seq_tokens: np.ndarray  # [s] int64
    seq_count: np.ndarray  # [s, L, E] float32
    seq_prob_sum: np.ndarray  # [s, L, E] float32
    expert_ids: np.ndarray | None = None  # [n, L, k] expert_id_dtype(E)
    expert_weights: np.ndarray | None = None  # [n, L, k] float16
    token_id: np.ndarray | None = None  # [n] int32
    token_sequence: np.ndarray | None = None  # [n] int64: index into the shard's sequences


@dataclass
class ShardRouting:
    """Routing of one shard's sequences, as host numpy arrays.

    Sizes: G languages, L MoE layers, E experts, k top-k, S sequences, N recorded tokens.
    Sequences keep the order they were given in (not the length-sorted batching order).
    """

    languages: list[str]  # G FLORES-style codes, the `language` coordinate
    layers: list[int]  # L model layer indices of the MoE layers, the `layer` coordinate
    num_experts: int  # E
    top_k: int  # k
    count: np.ndarray  # [G, L, E] int64: tokens whose top-k contains the expert
    gate_sum: np.ndarray  # [G, L, E] float64: sum of the routing weight the model used
    prob_sum: np.ndarray  # [G, L, E] float64: sum of softmax(logits) over all experts
    tokens: np.ndarray  # [G] int64: non-padding tokens per language
    seq_id: np.ndarray  # [S] str: record id of each sequence
    seq_language: np.ndarray  # [S] str
    seq_parallel_id: np.ndarray  # [S] str: same id = translations of each other
    seq_tokens: np.ndarray  # [S] int64
    seq_count: np.ndarray  # [S, L, E] float32
    seq_prob_sum: np.ndarray  # [S, L, E] float32
    expert_ids: np.ndarray | None = None  # [N, L, k] expert_id_dtype(E)
    expert_weights: np.ndarray | None = None  # [N, L, k] float16
    token_id: np.ndarray | None = None  # [N] int32 vocabulary id
    token_sequence: np.ndarray | None = None  # [N] int64 index into this shard's sequences

    def check_invariant(self) -> None:
        """Raise if sum_i count[g, l, i] != k * tokens[g] for some language and layer (METHODS 1)."""
        check_counts(self.count, self.tokens, self.top_k, self.languages, self.layers)


def empty_shard(languages: Sequence[str], layers: Sequence[int], num_experts: int, top_k: int, *,
                per_token: bool) -> ShardRouting:
    """A shard of these shapes with no sequences and zero sums: the template a streamed store is
    written from before the windows arrive."""
    G, L, E = len(languages), len(layers), num_experts
    zeros = {"count": np.zeros((G, L, E), np.int64), "gate_sum": np.zeros((G, L, E)),
             "prob_sum": np.zeros((G, L, E)), "tokens": np.zeros(G, np.int64)}
    return join_windows(languages, layers, num_experts, top_k, [], [], [], [], zeros, per_token=per_token)


def join_windows(languages: Sequence[str], layers: Sequence[int], num_experts: int, top_k: int, seq_ids,
                 parallel_ids, languages_of_texts, windows: Sequence[RoutingWindow],
                 aggregates: dict[str, np.ndarray], *, per_token: bool) -> ShardRouting:
    """The ShardRouting of these shapes from `aggregates` and the sequences of `windows` (in order)."""
    L, E, k = len(layers), num_experts, top_k

    def joined(name: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([getattr(w, name) for w in windows]) if windows else empty

    result = ShardRouting(
        languages=list(languages), layers=list(layers), num_experts=E, top_k=k, **aggregates,
        seq_id=np.asarray(seq_ids, dtype=str), seq_language=np.asarray(languages_of_texts, dtype=str),
        seq_parallel_id=np.asarray(parallel_ids, dtype=str),
        seq_tokens=joined("seq_tokens", np.zeros(0, np.int64)),
        seq_count=joined("seq_count", np.zeros((0, L, E), np.float32)),
        seq_prob_sum=joined("seq_prob_sum", np.zeros((0, L, E), np.float32)),
    )
    if per_token:
        result.expert_ids = joined("expert_ids", np.zeros((0, L, k), expert_id_dtype(E)))
        result.expert_weights = joined("expert_weights", np.zeros((0, L, k), np.float16))
        result.token_id = joined("token_id", np.zeros(0, np.int32))
        result.token_sequence = joined("token_sequence", np.zeros(0, np.int64))
    return result
