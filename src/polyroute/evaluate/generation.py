"""Batched greedy generation with the KV cache, cut at stop sequences as lm-evaluation-harness does.

Prompts are tokenised with the tokenizer's defaults, left-padded (``generate`` derives position ids
from the attention mask, so padding does not shift a row), sorted longest first and decoded greedily
for at most `max_new_tokens`. A row stops once its text holds a stop sequence or EOS; the text is
then cut before the first occurrence of each stop sequence in turn (the harness' ``s.split(term)[0]``),
with EOS's text counted as a stop sequence.
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
    """Per-row stopping criterion: a row is done once its new text contains a stop sequence."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_width = prompt_width
        # only the tail can hold a stop that was not there a step ago
        self.window = 2 + max((len(tokenizer.encode(s, add_special_tokens=False)) for s in self.stops), default=1)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        new = input_ids[:, self.prompt_width:]
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if not self.stops or new.shape[1] == 0:
            return done
        texts = self.tokenizer.batch_decode(new[:, -self.window:])
        for row, text in enumerate(texts):
            done[row] = any(stop in text for stop in self.stops)
        return done


def generate_greedy(model: Any, tokenizer: Any, prompts: Sequence[str], *, until: Sequence[str],
                    max_new_tokens: int = 256, batch_size: int = 8, max_length: int | None = None,
                    progress: Any = None) -> list[str]:
    """Greedy continuations of `prompts` (in prompt order), cut at `until` and EOS."""
    from transformers import StoppingCriteriaList

    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError(f"batch_size and max_new_tokens must be >= 1, got {batch_size}, {max_new_tokens}")
    stops = stop_sequences(tokenizer, until)
    device = next(model.parameters()).device
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
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                n = len(encoded[i])
                ids[r, width - n:] = torch.tensor(encoded[i], dtype=torch.long)
                mask[r, width - n:] = 1
            generated = model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                do_sample=False, num_beams=1, pad_token_id=pad, use_cache=True,
                stopping_criteria=StoppingCriteriaList([_StopOnSequences(tokenizer, stops, width)]),
            )
            for r, i in enumerate(rows):
                text = tokenizer.decode(generated[r, width:].tolist(), skip_special_tokens=True)
                out[i] = cut_at_stops(text, stops)
            if progress is not None:
                progress.update(len(rows))
    return out
