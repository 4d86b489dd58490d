"""Routing capture at the cost of a plain forward pass.

Forward hooks on the routers see (logits, weights, indices) of every MoE layer. Per batch they fill a
device buffer of per-sequence sums [B, L, 3E] (hits | used weights | softmax probabilities) with one
scatter and one batched matmul per layer (deterministic, no atomics); after the forward pass succeeds the
batch is committed: per-language sums += one-hot(language)^T @ buffer in float64, on the device. Nothing
is synchronised per token: the padding mask and token positions are built on the host before the batch,
and per-sequence / per-token arrays go to pinned host memory with non-blocking copies.

A `RoutingPass` walks the shard in windows of consecutive sequences (batched longest first inside each)
and hands each finished window (a `polyroute.routing.records.RoutingWindow`) out in the given order;
`polyroute.routing.stream` writes them to a store or joins them in memory.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from polyroute.devices import is_out_of_memory, token_budget_batches
from polyroute.models.adapter import MoEAdapter
from polyroute.routing.records import RoutingWindow, expert_id_dtype

log = logging.getLogger(__name__)

# torch dtype that carries the stored id dtype on the device (int16 bits are viewed as uint16 on the host)
_DEVICE_ID_DTYPES = {np.dtype(np.uint8): torch.uint8, np.dtype(np.uint16): torch.int16}


def detect_output_kind(first: torch.Tensor, top_k: int) -> str:
    """'scores' when every row holds exactly k non-zeros (a post-top-k score matrix), else 'logits' (METHODS 1)."""
    if first.numel() == 0:
        return "logits"
    nonzero = (first != 0).sum(dim=-1)
    return "scores" if bool((nonzero == top_k).all()) else "logits"


@dataclass
class _Batch:
    """Host-built description of one padded batch, plus its device buffers."""

    rows: list[int]  # original sequence index of each batch row
    seq_len: int  # padded length T
    valid: torch.Tensor  # [B*T] float32 on device: 1 for real tokens
    is_pad: torch.Tensor  # [B*T, 1] bool on device
    positions: torch.Tensor | None  # [n] int64 on device: flat index of each real token (per-token mode)
    sums: torch.Tensor  # [B, L, 3E] float32 on device
    ids: torch.Tensor | None  # [n, L, k] compact ids on device
    weights: torch.Tensor | None  # [n, L, k] float16 on device


class RoutingCapture:
    """Router hooks for one model; use as a context manager around forward passes driven by `run_batch`."""

    def __init__(self, model: nn.Module, adapter: MoEAdapter, num_languages: int, *, per_token: bool) -> None:
        self.model = model
        self.adapter = adapter
        self.per_token = per_token
        self.E, self.k, self.L = adapter.num_experts, adapter.top_k, len(adapter.moe_layers)
        self.device = next(model.parameters()).device
        # the decoder alone: routing needs no vocabulary projection, so the LM head's cost is skipped
        self.decoder = getattr(model, "model", model)
        self.id_dtype = expert_id_dtype(self.E)
        self._device_id_dtype = _DEVICE_ID_DTYPES[self.id_dtype]
        # [G, L, 3E] float64 on the device: count | gate_sum | prob_sum, committed per successful batch
        self.totals = torch.zeros(num_languages, self.L, 3 * self.E, dtype=torch.float64, device=self.device)
        self.output_kind = adapter.router_output_kind  # "auto" is resolved on the first batch
        self._batch: _Batch | None = None
        self._handles: list = []

    # --- hooks ---------------------------------------------------------------------------------
    def __enter__(self) -> "RoutingCapture":
        for j, layer in enumerate(self.adapter.moe_layers):
            router = self.adapter.router(self.model, layer)
            # prepend: see the router's own outputs before any other hook (e.g. transformers' recorders)
            self._handles.append(router.register_forward_hook(self._make_hook(j), prepend=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, j: int):
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            if self._batch is not None:
                self._record(j, module, args, output)

        return hook

    def _split_output(self, module: nn.Module, args: tuple, output: object) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(full [N, E], weights [N, k], ids [N, k]) from whatever the router returned."""
        tensors = output if isinstance(output, tuple) else (output,)
        tensors = [t for t in tensors if isinstance(t, torch.Tensor) and t.dim() >= 1]  # drops scalar aux losses
        ids = next((t for t in tensors if not t.is_floating_point() and t.shape[-1] == self.k), None)
        full = next((t for t in tensors if t.is_floating_point() and t.shape[-1] == self.E), None)
        used = next((t for t in tensors if t.is_floating_point() and t.shape[-1] == self.k), None)
        if full is None:  # router returned no full row (remote-code gates): recompute logits from its input
            hidden = args[0].reshape(-1, module.weight.shape[1])
            full = F.linear(hidden.float(), module.weight.float(), getattr(module, "bias", None))
        full = full.reshape(-1, self.E)
        if self.output_kind == "auto":
            self.output_kind = detect_output_kind(full[self._batch.valid.reshape(-1) > 0], self.k)
            log.info("router output detected as %s", self.output_kind)
        if ids is None:
            used, ids = self.adapter.route(full, module)
        elif used is None:
            used = full.gather(-1, ids)
        return full, used.reshape(-1, self.k), ids.reshape(-1, self.k)

    def _record(self, j: int, module: nn.Module, args: tuple, output: object) -> None:
        b = self._batch
        full, used, ids = self._split_output(module, args, output)
        # a model spread over several GPUs (device_map) routes each layer on its own card: gather here
        full, used, ids = full.to(self.device), used.to(self.device), ids.to(self.device)
        n, E = full.shape[0], self.E
        rows = len(b.rows)
        if n != rows * b.seq_len:
            raise ValueError(f"router of MoE layer {self.adapter.moe_layers[j]} saw {n} tokens, batch has {rows}x{b.seq_len}")
        if self.output_kind == "scores":
            probs = full.float() / full.float().sum(dim=-1, keepdim=True).clamp_min(1e-30)
        else:
            probs = torch.softmax(full.float(), dim=-1)
        table = torch.empty(n, 3 * E, dtype=torch.float32, device=full.device)
        table[:, : 2 * E].zero_()
        table[:, 2 * E :].copy_(probs)
        table.scatter_(1, ids, 1.0)  # top-k ids are distinct in a row: no duplicate writes
        table.scatter_(1, ids + E, used.float())
        table.masked_fill_(b.is_pad, 0.0)  # padding rows may hold NaN (fully masked attention); 0 * NaN is NaN
        # per-sequence sums over real tokens: [B, 1, T] @ [B, T, 3E]
        b.sums[:, j, :] = torch.bmm(b.valid.view(rows, 1, b.seq_len), table.view(rows, b.seq_len, 3 * E)).squeeze(1)
        if b.positions is not None:
            b.ids[:, j, :] = ids.index_select(0, b.positions).to(self._device_id_dtype)
            b.weights[:, j, :] = used.index_select(0, b.positions).to(torch.float16)

    # --- batches -------------------------------------------------------------------------------
    def run_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, rows: list[int], lang_onehot: torch.Tensor) -> _Batch:
        """Forward one padded host batch; commit its per-language sums; return its device buffers."""
        B, T = input_ids.shape
        mask_flat = attention_mask.reshape(-1)
        positions = None
        n = int(mask_flat.sum())
        if self.per_token:
            positions = mask_flat.nonzero().squeeze(1).to(self.device, non_blocking=True)
        self._batch = _Batch(
            rows=rows, seq_len=T,
            valid=mask_flat.to(torch.float32).to(self.device, non_blocking=True),
            is_pad=(mask_flat == 0).unsqueeze(1).to(self.device, non_blocking=True),
            positions=positions,
            sums=torch.zeros(B, self.L, 3 * self.E, dtype=torch.float32, device=self.device),
            ids=torch.empty(n, self.L, self.k, dtype=self._device_id_dtype, device=self.device) if self.per_token else None,
            weights=torch.empty(n, self.L, self.k, dtype=torch.float16, device=self.device) if self.per_token else None,
        )
        # positions from the mask, so left padding gives the same positions as right padding
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        try:
            self.decoder(
                input_ids=input_ids.to(self.device, non_blocking=True),
                attention_mask=attention_mask.to(self.device, non_blocking=True),
                position_ids=position_ids.to(self.device, non_blocking=True),
                use_cache=False,
                output_router_logits=False,  # the aux-loss path is not needed, the hooks see everything
            )
            batch = self._batch
        finally:
            self._batch = None
        # commit only after the whole forward succeeded (an OOM mid-way leaves the totals untouched)
        onehot = lang_onehot.to(self.device, torch.float64, non_blocking=True)
        self.totals += (onehot.T @ batch.sums.view(B, -1).double()).view_as(self.totals)
        return batch


class _HostCopies:
    """Non-blocking device->pinned-host copies; device sources are released once their copy is done."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.pending: deque = deque()

    def copy(self, t: torch.Tensor) -> torch.Tensor:
        if not self.cuda:
            return t
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.pending.append((event, t))
        while self.pending and self.pending[0][0].query():
            self.pending.popleft()
        return host

    def wait(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.pending.clear()


def _plan_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Length-sorted (longest first, ties by index: deterministic) batches whose padded size fits the
    budget; empty sequences route nothing and are left out."""
    kept = [i for i, n in enumerate(lengths) if n > 0]
    return [[kept[j] for j in batch] for batch in token_budget_batches([lengths[i] for i in kept], batch_tokens)]


def _pad(token_ids: list[list[int]], rows: list[int], pad_id: int, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    T = max(len(token_ids[i]) for i in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for r, i in enumerate(rows):
        seq = torch.tensor(token_ids[i], dtype=torch.long)
        span = slice(T - len(seq), T) if side == "left" else slice(0, len(seq))
        ids[r, span] = seq
        mask[r, span] = 1
    return ids, mask


def validate_inputs(texts, languages_of_texts, languages, batch_tokens, max_length) -> None:
    """One-line errors for inputs that do not fit together, before any model work."""
    if len(languages_of_texts) != len(texts):
        raise ValueError(f"languages_of_texts has {len(languages_of_texts)} entries for {len(texts)} texts")
    unknown = sorted(set(languages_of_texts) - set(languages))
    if unknown:
        raise ValueError(f"languages_of_texts has languages not in `languages`: {unknown}")
    if len(set(languages)) != len(languages):
        raise ValueError(f"languages has duplicates: {languages}")
    if batch_tokens < 1 or max_length < 1:
        raise ValueError(f"batch_tokens={batch_tokens} and max_length={max_length} must be positive")


@functools.cache
def _libc_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def _return_freed_host_memory() -> None:
    """Hand the heap pages freed by the window's forward passes back to the OS.

    glibc keeps them otherwise, and a long shard's resident memory (what Slurm's memory limit counts)
    would creep up by hundreds of MiB although nothing is held (measured in bench/bench_capture.py)."""
    trim = _libc_malloc_trim()
    if trim is not None:
        trim(0)


def _plan_windows(lengths: list[int], window_tokens: int) -> list[range]:
    """Consecutive sequence ranges of at most `window_tokens` tokens (a longer sequence is a window alone)."""
    windows, start, size = [], 0, 0
    for i, n in enumerate(lengths):
        if i > start and size + n > window_tokens:
            windows.append(range(start, i))
            start, size = i, 0
        size += n
    if start < len(lengths):
        windows.append(range(start, len(lengths)))
    return windows


class RoutingPass:
    """One pass of a shard's texts through the model, yielding its routing window by window.

    Sequences are taken in windows of consecutive sequences (about `window_tokens` tokens); inside a
    window they are batched longest first. Each finished window is handed out in the given order, so
    per-sequence and per-token arrays can be written as they come: host memory holds one window, not
    the shard. The per-language sums stay on the device until `aggregates()` (after the windows).
    """

    def __init__(self, model: nn.Module, tokenizer, adapter: MoEAdapter, texts: list[str],
                 languages_of_texts: list[str], *, languages: list[str], batch_tokens: int = 8192,
                 max_length: int = 512, per_token: bool = False, window_tokens: int | None = None,
                 progress: bool = False) -> None:
        validate_inputs(texts, languages_of_texts, languages, batch_tokens, max_length)
        self.token_ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
        self.lengths = np.array([len(t) for t in self.token_ids], dtype=np.int64)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        self.side = getattr(tokenizer, "padding_side", "right")
        self.languages = list(languages)
        self.lang_index = np.array([self.languages.index(g) for g in languages_of_texts], dtype=np.int64)
        self.batch_tokens = batch_tokens
        # a window of 16 batches sorts nearly as well as the whole shard; its host arrays stay small
        self.window_tokens = window_tokens or 16 * batch_tokens
        self.per_token = per_token
        self.progress = progress
        self.capture = RoutingCapture(model, adapter, len(self.languages), per_token=per_token)
        self._totals: np.ndarray | None = None

    def windows(self) -> Iterator[RoutingWindow]:
        from tqdm.auto import tqdm

        cap = self.capture
        copies = _HostCopies(cap.device)
        interactive = sys.stderr.isatty()
        bar = tqdm(total=int(self.lengths.sum()), unit="tok", disable=not self.progress,
                   mininterval=2 if interactive else 60, desc="routing", dynamic_ncols=interactive)
        for window in _plan_windows(self.lengths.tolist(), self.window_tokens):
            # hooks and inference mode only while this pass runs the model, not while the caller
            # holds a window (it may run the model itself, or need autograd)
            with torch.inference_mode(), cap:
                done = []
                for rows in _plan_batches(self.lengths[window].tolist(), self.batch_tokens):
                    done.extend(self._run(copies, [window.start + r for r in rows], bar))
                copies.wait()
            window_routing = self._window(window, done)
            del done
            _return_freed_host_memory()
            yield window_routing
        self._totals = cap.totals.cpu().numpy()
        bar.close()

    def _run(self, copies: _HostCopies, rows: list[int], bar) -> list[tuple]:
        """Route one batch (halved and retried on out-of-memory); its host results per sub-batch."""
        queue, done = deque([rows]), []
        while queue:
            rows = queue.popleft()
            ids, mask = _pad(self.token_ids, rows, self.pad_id, self.side)
            onehot = F.one_hot(torch.from_numpy(self.lang_index[rows]), len(self.languages))
            try:
                batch = self.capture.run_batch(ids, mask, rows, onehot)
            except Exception as err:  # noqa: BLE001 - only OOM is handled, the rest re-raised
                if not is_out_of_memory(err) or len(rows) == 1:
                    raise
                half = len(rows) // 2
                log.warning("out of memory on a batch of %d x %d tokens: halving and retrying", len(rows), ids.shape[1])
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                queue.appendleft(rows[half:])
                queue.appendleft(rows[:half])
                continue
            done.append((rows, copies.copy(batch.sums),  # per sequence: hits | used weights | probs
                         copies.copy(batch.ids) if self.per_token else None,
                         copies.copy(batch.weights) if self.per_token else None))
            bar.update(int(mask.sum()))
        return done

    def _window(self, window: range, done: list[tuple]) -> RoutingWindow:
        """The window's host results back in the given sequence order."""
        E, L, k = self.capture.E, self.capture.L, self.capture.k
        s = len(window)
        seq_count = np.zeros((s, L, E), dtype=np.float32)
        seq_gate = np.zeros((s, L, E), dtype=np.float32)
        seq_prob = np.zeros((s, L, E), dtype=np.float32)
        for rows, seq, _, _ in done:
            arr = seq.numpy()
            local = np.asarray(rows, dtype=np.int64) - window.start
            seq_count[local] = arr[:, :, :E]
            seq_gate[local] = arr[:, :, E : 2 * E]
            seq_prob[local] = arr[:, :, 2 * E :]
        lengths = self.lengths[window]
        out = RoutingWindow(start=window.start, seq_tokens=lengths.copy(), seq_count=seq_count, seq_gate_sum=seq_gate,
                            seq_prob_sum=seq_prob)
        if not self.per_token:
            return out
        if done:
            ids = np.concatenate([d[2].numpy().view(self.capture.id_dtype) for d in done])
            weights = np.concatenate([d[3].numpy() for d in done])
            batch_rows = np.concatenate([np.asarray(d[0], dtype=np.int64) for d in done]) - window.start
        else:
            ids, weights = np.zeros((0, L, k), self.capture.id_dtype), np.zeros((0, L, k), np.float16)
            batch_rows = np.zeros(0, np.int64)
        # where each sequence's tokens start in the batch order, then gather in the given order
        start = np.zeros(s, dtype=np.int64)
        if len(batch_rows):
            start[batch_rows] = np.concatenate(([0], np.cumsum(lengths[batch_rows])[:-1]))
        perm = np.concatenate([np.arange(start[i], start[i] + lengths[i]) for i in range(s)] or [np.zeros(0, np.int64)])
        out.expert_ids = ids[perm]
        out.expert_weights = weights[perm]
        out.token_id = np.concatenate([np.asarray(self.token_ids[i], dtype=np.int32) for i in window]
                                      or [np.zeros(0, np.int32)])
        out.token_sequence = np.repeat(np.arange(window.start, window.stop, dtype=np.int64), lengths)
        return out

    def aggregates(self) -> dict[str, np.ndarray]:
        """count, gate_sum, prob_sum [G, L, E] and tokens [G] of the whole pass (after `windows()`)."""
        if self._totals is None:
            raise RuntimeError("aggregates() before the windows were consumed")
        E, t = self.capture.E, self._totals
        G = len(self.languages)
        tokens = np.bincount(self.lang_index, weights=self.lengths, minlength=G).astype(np.int64)
        return {"count": np.rint(t[:, :, :E]).astype(np.int64), "gate_sum": t[:, :, E : 2 * E].astype(np.float64),
                "prob_sum": t[:, :, 2 * E :].astype(np.float64), "tokens": tokens}
