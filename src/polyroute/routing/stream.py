"""Extraction: one routing pass over a shard's texts, its windows streamed to a sink as they finish.

The sink is a routing store (`extract_to_store`, what the workflow runs) or memory (`extract_shard`,
for tests and notebooks): one path, so both hold the same routing. Streaming to a store keeps host
memory at one window of per-sequence and per-token arrays (plus one store chunk per streamed dim), so
a shard of any size runs in flat memory. The store is written like any other (``<path>.tmp-<pid>``,
invariant re-checked from disk, marker last, then renamed): a killed extraction leaves nothing a
rerun would trust. Windows are written by a background thread (`polyroute.routing.background`) while
the model routes the next ones, in the same order, so the store is the same bytes as a serial write.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from polyroute.models.adapter import MoEAdapter
from polyroute.routing.background import BackgroundWork
from polyroute.routing.capture import RoutingPass
from polyroute.routing.records import RoutingWindow, ShardRouting, empty_shard, join_windows
from polyroute.routing.store import AGGREGATES, StoreWriter, to_dataset, window_blocks

log = logging.getLogger(__name__)


def _stream(model, tokenizer, adapter: MoEAdapter, texts: Sequence[str], languages_of_texts: Sequence[str],
            seq_ids: Sequence[str], parallel_ids: Sequence[str], sink: Callable[[RoutingPass], Any],
            options: Mapping[str, Any]) -> Any:
    """Check the labels, build the pass (which checks the rest) and hand it to `sink`, which consumes its windows."""
    for name, values in (("seq_ids", seq_ids), ("parallel_ids", parallel_ids)):
        if len(values) != len(texts):
            raise ValueError(f"{name} has {len(values)} entries for {len(texts)} texts")
    return sink(RoutingPass(model, tokenizer, adapter, list(texts), list(languages_of_texts), **options))


def _shapes(routing_pass: RoutingPass) -> tuple[list[str], list[int], int, int]:
    cap = routing_pass.capture
    return routing_pass.languages, list(cap.adapter.moe_layers), cap.E, cap.k


def extract_to_store(model, tokenizer, adapter: MoEAdapter, texts: Sequence[str], languages_of_texts: Sequence[str],
                     seq_ids: Sequence[str], parallel_ids: Sequence[str], out: str | os.PathLike,
                     attrs: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """Route `texts` through `model` and write the routing store at `out`; returns the aggregates.

    `options` are `RoutingPass`'s (languages, batch_tokens, max_length, per_token, window_tokens,
    progress). The store equals ``write_store(to_dataset(extract_shard(...), attrs), out)`` with the same options.
    """

    def write(routing_pass: RoutingPass) -> dict[str, Any]:
        template = to_dataset(empty_shard(*_shapes(routing_pass), per_token=routing_pass.per_token), attrs)
        labels = [np.asarray(values, dtype=object) for values in (seq_ids, languages_of_texts, parallel_ids)]  # once, sliced per window

        def append(writer: StoreWriter, window: RoutingWindow) -> None:
            for dim, block in window_blocks(window, *labels).items():
                writer.append(dim, block)

        with StoreWriter(out, template) as writer:
            # windows are written in a background thread while the model routes the next ones
            with BackgroundWork(depth=1) as work:
                for window in routing_pass.windows():
                    work.submit(append, writer, window)
                work.close()
            log.info("store writes took %.1f s of CPU in the background", work.busy_s)
            aggregates = routing_pass.aggregates()
            values = xr.Dataset({name: (template[name].dims, aggregates[name]) for name in AGGREGATES})
            writer.finish(template.attrs, values=values)  # re-checks the invariant from disk
        log.info("wrote %s (%d tokens)", out, int(aggregates["tokens"].sum()))
        return aggregates

    return _stream(model, tokenizer, adapter, texts, languages_of_texts, seq_ids, parallel_ids, write, options)


def extract_shard(model, tokenizer, adapter: MoEAdapter, texts: Sequence[str], languages_of_texts: Sequence[str],
                  seq_ids: Sequence[str], parallel_ids: Sequence[str], **options: Any) -> ShardRouting:
    """Route every text through `model` and return the shard's routing in memory, sequences in the given order.

    `options` as for `extract_to_store`. Batches hold at most `batch_tokens` padded tokens, longest
    sequences first; a batch that runs out of memory is halved and retried. Padding never counts.
    Checks the count invariant before returning."""

    def join(routing_pass: RoutingPass) -> ShardRouting:
        windows: list[RoutingWindow] = list(routing_pass.windows())
        result = join_windows(*_shapes(routing_pass), seq_ids, parallel_ids, languages_of_texts, windows,
                              routing_pass.aggregates(), per_token=routing_pass.per_token)
        result.check_invariant()
        return result

    return _stream(model, tokenizer, adapter, texts, languages_of_texts, seq_ids, parallel_ids, join, options)
