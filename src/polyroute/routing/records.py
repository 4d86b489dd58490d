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


# float32 per-sequence sums of float weights, against the float64 per-language ones
SEQUENCE_SUM_RTOL = 1e-4


def check_sequence_sums(shard: ShardRouting) -> None:
    """Raise unless the per-sequence arrays add up to the per-language aggregates: seq_count to count
    (exactly), seq_gate_sum to gate_sum and seq_prob_sum to prob_sum (float32 rounding), and every
    used weight sits on a chosen expert (seq_gate_sum is 0 where seq_count is 0)."""
    seq_language = np.asarray(shard.seq_language, dtype=object).astype(str)
    for seq_name, name in (("seq_count", "count"), ("seq_gate_sum", "gate_sum"), ("seq_prob_sum", "prob_sum")):
        per_seq, want = getattr(shard, seq_name), np.asarray(getattr(shard, name), dtype=np.float64)
        for g, code in enumerate(shard.languages):
            summed = per_seq[seq_language == code].sum(axis=0, dtype=np.float64)
            close = summed == want[g] if name == "count" else np.isclose(summed, want[g], rtol=SEQUENCE_SUM_RTOL,
                                                                         atol=SEQUENCE_SUM_RTOL)
            if not close.all():
                l, i = np.argwhere(~close)[0]
                raise ValueError(f"routing invariant broken: {seq_name} of language {code} layer {int(shard.layers[l])} "
                                 f"expert {i} sums to {summed[l, i]:.6g}, {name} is {want[g, l, i]:.6g}")
    stray = (np.asarray(shard.seq_gate_sum) != 0) & (np.asarray(shard.seq_count) == 0)
    if stray.any():
        s, l, i = np.argwhere(stray)[0]
        raise ValueError(f"routing invariant broken: sequence {s} layer {int(shard.layers[l])} has a routing weight "
                         f"on expert {i}, which none of its tokens chose")


@dataclass
class RoutingWindow:
    """Routing of consecutive sequences ``start .. start + s`` of a shard, in the given order."""

    start: int
    seq_tokens: np.ndarray  # [s] int64
    seq_count: np.ndarray  # [s, L, E] float32
    seq_gate_sum: np.ndarray  # [s, L, E] float32: sum of the routing weights the model applied
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
    seq_gate_sum: np.ndarray  # [S, L, E] float32: sum of the routing weights the model applied (Bandarkar's input)
    seq_prob_sum: np.ndarray  # [S, L, E] float32
    expert_ids: np.ndarray | None = None  # [N, L, k] expert_id_dtype(E)
    expert_weights: np.ndarray | None = None  # [N, L, k] float16
    token_id: np.ndarray | None = None  # [N] int32 vocabulary id
    token_sequence: np.ndarray | None = None  # [N] int64 index into this shard's sequences

    def check_invariant(self) -> None:
        """Raise if sum_i count[g, l, i] != k * tokens[g] for some language and layer (METHODS 1), or
        if the per-sequence sums disagree with the per-language ones (`check_sequence_sums`)."""
        check_counts(self.count, self.tokens, self.top_k, self.languages, self.layers)
        check_sequence_sums(self)


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
        seq_gate_sum=joined("seq_gate_sum", np.zeros((0, L, E), np.float32)),
        seq_prob_sum=joined("seq_prob_sum", np.zeros((0, L, E), np.float32)),
    )
    if per_token:
        result.expert_ids = joined("expert_ids", np.zeros((0, L, k), expert_id_dtype(E)))
        result.expert_weights = joined("expert_weights", np.zeros((0, L, k), np.float16))
        result.token_id = joined("token_id", np.zeros(0, np.int32))
        result.token_sequence = joined("token_sequence", np.zeros(0, np.int64))
    return result
