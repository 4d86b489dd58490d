"""The in-memory result of routing one shard: the hand-off between capture and the store."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    expert_ids: np.ndarray | None = None  # [N, L, k] uint8 (E <= 256) or uint16
    expert_weights: np.ndarray | None = None  # [N, L, k] float16
    token_id: np.ndarray | None = None  # [N] int32 vocabulary id
    token_sequence: np.ndarray | None = None  # [N] int64 index into this shard's sequences

    def check_invariant(self) -> None:
        """Raise if sum_i count[g, l, i] != k * tokens[g] for some language and layer (METHODS 1)."""
        per_layer = self.count.sum(axis=2)
        expected = self.top_k * self.tokens[:, None]
        bad = np.argwhere(per_layer != expected)
        if bad.size:
            g, l = bad[0]
            raise ValueError(
                f"routing invariant broken: language {self.languages[g]} layer {self.layers[l]} "
                f"counts {int(per_layer[g, l])} expert choices for {int(self.tokens[g])} tokens x k={self.top_k}"
            )
