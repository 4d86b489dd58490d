"""Batched greedy generation with the KV cache, cut at stop sequences as lm-evaluation-harness does.

Prompts are tokenised with the tokenizer's defaults, left-padded (``generate`` derives position ids
from the attention mask, so padding does not shift a row), sorted longest first and decoded greedily
for at most `max_new_tokens`. A row stops once its text holds a stop sequence or EOS; the text is
then cut before the first occurrence of each stop sequence in turn (the harness' ``s.split(term)[0]``),
with EOS's text counted as a stop sequence.

Speed on a GPU, where a decode step is small and the host must not hold the device up:
- Stop sequences are looked for every `stop_check_every` steps, not every step: the check decodes rows
  on the host, which waits for the device. A row that runs on past its stop for a few steps gets the
  same text, because the cut keeps only what precedes the first stop (EOS still stops a row at once,
  on the device).
- With `static_cache` (the default on CUDA) the KV cache is allocated once at its full length, which
  lets transformers compile the decode step and replay it as a CUDA graph (its auto-compile, mode
  reduce-overhead). Prompt widths are rounded up to `width_multiple` so that batches share cache
  shapes and the compiled step is reused; left padding is masked, so outputs do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["stop_sequences", "cut_at_stops", "generate_greedy"]


def stop_sequences(tokenizer: Any, until: Sequence[str]) -> list[str]:
    """`until` plus the EOS token's text, without duplicates (the harness adds EOS the same way)."""
    stops = list(dict.fromkeys(until))
    if tokenizer.eos_token_id is not None:
        eos = tokenizer.decode([tokenizer.eos_token_id], skip_special_tokens=False)
        if eos and eos not in stops:
            stops.append(eos)
    return stops


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


class _StopOnSequences:
    """Per-row stopping criterion: a row is done once its new text contains a stop sequence.

    Looked at every `every` steps (and at the first), over the tail that can hold a stop that was not
    there at the previous look; in between it answers "not done" without touching the device's data."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int, every: int = 1) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_width = prompt_width
        self.every = every
        self.window = every + 1 + max((len(tokenizer.encode(s, add_special_tokens=False)) for s in self.stops),
                                      default=1)
        self._not_done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        n_new = input_ids.shape[1] - self.prompt_width
        if self._not_done is None or self._not_done.shape[0] != input_ids.shape[0]:
            self._not_done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.stops or n_new <= 0 or (n_new - 1) % self.every:
            return self._not_done
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width:][:, -self.window:].tolist())
        done = [any(stop in text for stop in self.stops) for text in texts]
        return torch.tensor(done, dtype=torch.bool).to(input_ids.device, non_blocking=True)


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def generate_greedy(model: Any, tokenizer: Any, prompts: Sequence[str], *, until: Sequence[str],
                    max_new_tokens: int = 256, batch_size: int = 8, max_length: int | None = None,
                    progress: Any = None, static_cache: bool | None = None, stop_check_every: int | None = None,
                    width_multiple: int = 64) -> list[str]:
    """Greedy continuations of `prompts` (in prompt order), cut at `until` and EOS.

    `static_cache` and `stop_check_every` default to what suits the model's device: a static cache
    and a look for stop sequences every 8 steps on CUDA, a dynamic cache and a look every step
    elsewhere (where the host is not waiting on a device). Outputs are the same either way."""
    from transformers import StoppingCriteriaList

    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size}, {max_new_tokens}")
    stops = stop_sequences(tokenizer, until)
    device = next(model.parameters()).device
    on_gpu = device.type == "cuda"
    static_cache = on_gpu if static_cache is None else static_cache
    every = stop_check_every or (8 if on_gpu else 1)
    extra: dict[str, Any] = {"cache_implementation": "static"} if static_cache else {}
    encoded = [tokenizer.encode(p) for p in prompts]
    if max_length is not None:  # keep room for the answer, as the harness does (left truncation)
        keep = max_length - max_new_tokens
        if keep < 1:
            raise ValueError(f"max_length {max_length} leaves no room for a prompt after {max_new_tokens} new tokens")
        encoded = [ids[-keep:] for ids in encoded]
    order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = [""] * len(prompts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in rows)
            if static_cache:  # shared cache shapes across batches: the compiled decode step is reused
                width = _round_up(width, width_multiple)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                n = len(encoded[i])
                ids[r, width - n:] = torch.tensor(encoded[i], dtype=torch.long)
                mask[r, width - n:] = 1
            generated = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                do_sample=False, num_beams=1, pad_token_id=pad, use_cache=True,
                stopping_criteria=StoppingCriteriaList([_StopOnSequences(tokenizer, stops, width, every)]),
                **extra,
            )
            for r, i in enumerate(rows):
                text = tokenizer.decode(generated[r, width:].tolist(), skip_special_tokens=True)
                out[i] = cut_at_stops(text, stops)
            if progress is not None:
                progress.update(len(rows))
    return out
