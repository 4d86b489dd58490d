"""What the model-running steps share about devices."""

from __future__ import annotations

import torch

__all__ = ["is_out_of_memory"]


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` is a device running out of memory (CUDA's own error type, or a backend's RuntimeError)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom_type is not None and isinstance(err, oom_type)) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err))
