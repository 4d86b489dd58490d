"""Log-probabilities of chosen tokens at chosen positions, without the full [batch, tokens, vocabulary] tensor.

Scoring reads a handful of positions per row (a continuation's), yet a causal LM's forward projects
every position onto the whole vocabulary: at a 151,936-token vocabulary that projection and its
float32 log-softmax cost more than the decoder and do not fit in memory at batch 128. So the decoder
runs alone, the hidden states of the read positions are gathered on the device, and only they go
through the output head, in row chunks of bounded size; per position the result is the target's
log-probability and whether it is the argmax, the only numbers that leave the device.

Decoder-then-head equals the model's own forward for every family whose logits are
``lm_head(final hidden state)``. A family that post-processes its logits (soft-capping, scaling)
would differ, so the first call per model compares the two on a short probe and, where they differ,
falls back to the model's full forward (gathered on the device as well).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import torch

__all__ = ["TokenScores", "score_positions"]

log = logging.getLogger(__name__)

# float32 logits held at once per chunk: 256 MiB (~440 positions at a 151,936-token vocabulary)
_CHUNK_BYTES = 1 << 28
_PROBE_LENGTH = 8
_head_matches: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()


class TokenScores:
    """Per read position: the target's log-probability (float32) and whether it is the argmax; on the host."""

    __slots__ = ("logprob", "greedy")

    def __init__(self, logprob: torch.Tensor, greedy: torch.Tensor) -> None:
        self.logprob, self.greedy = logprob, greedy


def _decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    get_decoder = getattr(model, "get_decoder", None)
    get_head = getattr(model, "get_output_embeddings", None)
    if get_decoder is None or get_head is None:
        return None
    decoder, head = get_decoder(), get_head()
    if decoder is model or head is None:
        return None
    return decoder, head


def _last_hidden(decoder: Any, ids: torch.Tensor) -> torch.Tensor:
    out = decoder(input_ids=ids, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def _split_is_exact(model: Any, parts: tuple[Any, Any], device: torch.device) -> bool:
    """Whether decoder + head reproduces the model's logits (checked once per model, on a short probe)."""
    known = _head_matches.get(model)
    if known is not None:
        return known
    decoder, head = parts
    probe = torch.arange(1, _PROBE_LENGTH + 1, device=device)[None] % max(2, int(head.weight.shape[0]))
    whole = model(input_ids=probe, use_cache=False).logits.float()
    split = head(_last_hidden(decoder, probe)).float()
    exact = whole.shape == split.shape and bool(torch.allclose(whole, split, rtol=1e-3, atol=1e-3))
    if not exact:
        log.warning("%s post-processes its logits: scoring falls back to the full forward (slower, more memory)",
                    type(model).__name__)
    _head_matches[model] = exact
    return exact


def _score_chunks(logits_of, n: int, targets: torch.Tensor, vocab: int, device: torch.device) -> TokenScores:
    """Target log-probability and argmax test of `n` positions, `logits_of(slice)` computing their logits
    on `device` (a model spread over several GPUs ends on its last)."""
    rows = max(1, _CHUNK_BYTES // (4 * vocab))
    targets = targets.to(device)
    logprob = torch.empty(n, dtype=torch.float32, device=device)
    greedy = torch.empty(n, dtype=torch.bool, device=device)
    for start in range(0, n, rows):
        part = slice(start, min(n, start + rows))
        logits = logits_of(part).float()
        target = targets[part]
        logprob[part] = logits.gather(1, target[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
        greedy[part] = logits.argmax(dim=-1) == target
    return TokenScores(logprob.cpu(), greedy.cpu())


def score_positions(model: Any, ids: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor,
                    targets: torch.Tensor) -> TokenScores:
    """For each i: log P(targets[i] | ids[rows[i], :positions[i] + 1]) and whether targets[i] is the argmax.

    `ids` [B, T] on the model's device (right-padded, no attention mask: causal attention never reads
    what follows a position); `rows`, `positions`, `targets` [N] int64 (moved to where the hidden
    states and logits are: a model spread over GPUs by a device map ends on its last).
    """
    parts = _decoder_and_head(model)
    if parts is not None and _split_is_exact(model, parts, ids.device):
        decoder, head = parts
        hidden = _last_hidden(decoder, ids)
        # [N, H]: the only hidden states the head sees, moved to the head's device
        picked = hidden[rows.to(hidden.device), positions.to(hidden.device)].to(head.weight.device)
        return _score_chunks(lambda part: head(picked[part]), len(targets), targets, int(head.weight.shape[0]),
                             head.weight.device)
    logits = model(input_ids=ids, use_cache=False).logits  # model dtype, on the device; never float32 whole
    rows, positions = rows.to(logits.device), positions.to(logits.device)
    return _score_chunks(lambda part: logits[rows[part], positions[part]], len(targets), targets, logits.shape[-1],
                         logits.device)
