"""What the model-running steps share about devices."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["is_out_of_memory", "token_budget_batches"]


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` is a device running out of memory (CUDA's own error type, or a backend's RuntimeError)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(err, oom_type)) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err))


def token_budget_batches(lengths: Sequence[int], batch_tokens: int, max_rows: int | None = None) -> list[list[int]]:
    """Indices of `lengths` in batches, longest first (ties by index: deterministic), each at most
    `batch_tokens` once padded to its longest (a longer item is a batch alone) and `max_rows` items."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        last = batches[-1] if batches else None
        if (last is not None and (max_rows is None or len(last) < max_rows)
                and (len(last) + 1) * lengths[last[0]] <= batch_tokens):
            last.append(i)
        else:
            batches.append([i])
    return batches
