"""Training data: tokenised texts and a deterministic, seed-fixed batch order.

An optimizer step consumes ``G = micro_batch_size * world_size * gradient_accumulation`` sequences,
split into ``world_size * gradient_accumulation`` micro-batches; micro-batch ``j`` of a step goes to
rank ``j % world_size`` as its accumulation slot ``j // world_size``. The order of an epoch is a
permutation drawn from ``seed + epoch``; a short last step wraps to the start of the same permutation.
So the batches of step ``s`` are a pure function of (seed, s): a resumed run sees exactly the data of
an uninterrupted one, and 1 process x 2 accumulation slots sees the data of 2 processes x 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchOrder:
    """Which sequences make each micro-batch."""

    num_sequences: int
    micro_batch_size: int
    world_size: int
    gradient_accumulation: int
    seed: int

    @property
    def per_step(self) -> int:
        return self.micro_batch_size * self.world_size * self.gradient_accumulation

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.num_sequences / self.per_step)

    def epoch_permutation(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(self.num_sequences, generator=g).tolist()

    def step_micro_batches(self, step: int) -> list[list[int]]:
        """All ``world_size * gradient_accumulation`` micro-batches of optimizer step ``step``."""
        epoch, within = divmod(step, self.steps_per_epoch)
        perm = self.epoch_permutation(epoch)
        start = within * self.per_step
        flat = [perm[(start + i) % self.num_sequences] for i in range(self.per_step)]
        m = self.micro_batch_size
        return [flat[i:i + m] for i in range(0, self.per_step, m)]

    def rank_micro_batches(self, step: int, rank: int) -> list[list[int]]:
        """The micro-batches of ``step`` that ``rank`` runs, in accumulation order."""
        mbs = self.step_micro_batches(step)
        return [mbs[a * self.world_size + rank] for a in range(self.gradient_accumulation)]


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text (tokenizer's own special tokens, truncated); texts under 2 tokens are dropped."""
    if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts: expected a list of strings")
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, add_special_tokens=True)["input_ids"]
    seqs = [list(ids) for ids in enc if len(ids) >= 2]
    if not seqs:
        raise ValueError(f"texts: none of the {len(texts)} texts has 2 or more tokens; nothing to train on")
    return seqs


def collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lr_factor(step: int, total_steps: int, warmup_ratio: float) -> float:
    """Linear warmup over ``ceil(warmup_ratio * total)`` steps, then linear decay to 0 (HF's linear schedule)."""
    warmup = math.ceil(warmup_ratio * total_steps)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
