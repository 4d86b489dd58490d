"""Log-likelihood scoring of continuations, batched, tokenised as lm-evaluation-harness' HFLM does.

A request is ``(context, continuation)``. As in the harness (0.4.x, ``_encode_pair``): trailing
whitespace of the context moves to the continuation, the pair is encoded whole and split at the
context's length, and an empty context is replaced by the prefix token (BOS, else EOS). The model
sees ``(context + continuation)[:-1]`` right-padded, with no attention mask (padding sits after
every real token, so causal attention never reads it), and the continuation's log-probability is
read from the last ``len(continuation)`` positions. Requests whose model input is identical (the
choices of a multiple-choice item that differ only in their last token, e.g. " A"/" B") share one
forward pass.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from polyroute.devices import is_out_of_memory, token_budget_batches
from polyroute.evaluate.positions import score_positions

__all__ = ["Scored", "Encoded", "prefix_token_id", "encode_pair", "encode_requests", "loglikelihoods",
           "rolling_windows", "model_max_length"]

log = logging.getLogger(__name__)

# padded tokens per forward: Qwen3-30B-A3B's activations at 65,536 tokens take ~7 GB beside its 61 GB of
# bf16 weights, so batch 128 at 2,048-token contexts runs on an 80 GB card in 4 forwards (bench/README)
DEFAULT_BATCH_TOKENS = 65536


@dataclass(frozen=True)
class Scored:
    """One continuation's score: summed log-probability, whether greedy decoding would produce it,
    and its number of tokens."""

    logprob: float
    is_greedy: bool
    n_tokens: int


@dataclass(frozen=True)
class Encoded:
    context: tuple[int, ...]
    continuation: tuple[int, ...]


def prefix_token_id(tokenizer: Any) -> int:
    """The token an empty context is replaced by: BOS if the tokenizer has one, else EOS."""
    if tokenizer.bos_token_id is not None:
        return tokenizer.bos_token_id
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to condition an empty context on")
    return tokenizer.eos_token_id


def _encode(tokenizer: Any, text: str, add_special_tokens: bool | None = None) -> list[int]:
    kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
    bos = tokenizer.bos_token
    if add_special_tokens is None and bos is not None and text.startswith(bos):
        kwargs["add_special_tokens"] = False  # the text already carries its BOS
    return tokenizer.encode(text, **kwargs)


def encode_pair(tokenizer: Any, context: str, continuation: str) -> Encoded:
    """Token ids of a (context, continuation) request, split as the harness splits them."""
    if context == "":
        cont = _encode(tokenizer, continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        if cont and cont[0] == prefix:
            return Encoded(tuple(cont[:1]), tuple(cont[1:]))
        return Encoded((prefix,), tuple(cont))
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = _encode(tokenizer, context + continuation)
    ctx = _encode(tokenizer, context)
    return Encoded(tuple(ctx), tuple(whole[len(ctx):]))


def encode_requests(tokenizer: Any, requests: Sequence[tuple[str, str]]) -> list[Encoded]:
    out = [encode_pair(tokenizer, context, continuation) for context, continuation in requests]
    for (context, continuation), enc in zip(requests, out):
        if not enc.continuation:
            raise ValueError(f"continuation {continuation!r} of context ...{context[-40:]!r} encodes to no token")
    return out


def model_max_length(model: Any, tokenizer: Any, default: int = 2048) -> int:
    """The longest input the model takes: its config's position limit, else the tokenizer's (as HFLM)."""
    config = getattr(model, "config", None)
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit < 10**9:  # transformers' "no limit" sentinel is ~1e30
        return int(limit)
    return default


def _model_input(enc: Encoded, max_length: int) -> tuple[int, ...]:
    """The model input of a request: context + continuation without its last token, left-truncated."""
    return (enc.context + enc.continuation)[-(max_length + 1):][:-1]


def _score_batch(model: Any, batch: list[tuple[int, ...]], reads: list[list[tuple[int, tuple[int, ...]]]],
                 device: torch.device) -> list[tuple[int, Scored]]:
    """One forward over `batch` (inputs, longest first); each input's reads are (request, continuation)."""
    width = len(batch[0])
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    rows, positions, targets, spans = [], [], [], []
    for row, inp in enumerate(batch):
        ids[row, :len(inp)] = torch.tensor(inp, dtype=torch.long)
        for request, cont in reads[row]:
            first = len(inp) - len(cont)  # the position whose logits predict the continuation's first token
            spans.append((request, len(targets), len(cont)))
            rows += [row] * len(cont)
            positions += range(first, len(inp))
            targets += cont
    index = [torch.tensor(v, dtype=torch.long).to(device, non_blocking=True) for v in (rows, positions, targets)]
    scores = score_positions(model, ids.to(device, non_blocking=True), *index)
    logprob, greedy = scores.logprob.double(), scores.greedy
    return [(request, Scored(float(logprob[at:at + n].sum()), bool(greedy[at:at + n].all()), n))
            for request, at, n in spans]


def loglikelihoods(model: Any, encoded: Sequence[Encoded], *, batch_size: int = 16,
                   batch_tokens: int = DEFAULT_BATCH_TOKENS, max_length: int | None = None,
                   progress: Any = None) -> list[Scored]:
    """Score every request; results in request order. A forward takes at most `batch_size` distinct model
    inputs and `batch_tokens` padded tokens (what bounds its activation memory).

    Log-probabilities are computed only at the continuation positions, on the device
    (`polyroute.evaluate.positions`); a batch that runs out of device memory is halved and retried."""
    if batch_size < 1 or batch_tokens < 1:
        raise ValueError(f"batch_size and batch_tokens must be >= 1, got {batch_size}, {batch_tokens}")
    max_length = max_length or model_max_length(model, None)
    device = next(model.parameters()).device
    # One forward per distinct input: requests whose inputs are equal read the same logits.
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, enc in enumerate(encoded):
        if len(enc.continuation) > max_length:
            raise ValueError(f"a continuation of {len(enc.continuation)} tokens exceeds max_length {max_length}")
        groups.setdefault(_model_input(enc, max_length), []).append(i)
    # Longest first, like the harness: the first batch is the largest, so memory trouble shows early.
    order = sorted(groups, key=lambda inp: (-len(inp), inp))
    planned = token_budget_batches([len(inp) for inp in order], batch_tokens, max_rows=batch_size)
    queue = deque([order[j] for j in batch] for batch in planned)
    results: list[Scored | None] = [None] * len(encoded)
    with torch.inference_mode():
        while queue:
            batch = queue.popleft()
            reads = [[(i, encoded[i].continuation) for i in groups[inp]] for inp in batch]
            try:
                scored = _score_batch(model, batch, reads, device)
            except Exception as err:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
                if not is_out_of_memory(err) or len(batch) == 1:
                    raise
                log.warning("out of memory scoring %d inputs of up to %d tokens: halving and retrying",
                            len(batch), len(batch[0]))
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                half = len(batch) // 2
                queue.extendleft((batch[half:], batch[:half]))
                continue
            for i, score in scored:
                results[i] = score
            if progress is not None:
                progress.update(len(batch))
    return results  # type: ignore[return-value]


def rolling_windows(tokens: Sequence[int], prefix_token: int, max_length: int) -> list[Encoded]:
    """Disjoint prediction windows over a long text (the harness' rolling log-likelihood with a
    context of one token): every token is predicted once, each window with as much preceding text
    as fits."""
    tokens = list(tokens)
    if not tokens:
        return []
    first = min(max_length, len(tokens))
    windows = [Encoded((prefix_token,), tuple(tokens[:first]))]
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, max_length)
        end = predicted + n
        inp = tokens[end - max_length - 1:end - 1]  # end > max_length here, so the slice is plain
        context = tuple(inp[:len(inp) - n + 1])
        windows.append(Encoded(context, tuple(tokens[end - n:end])))
        predicted = end
    return windows
