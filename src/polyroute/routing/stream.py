"""Extraction straight into a routing store: windows are appended as they finish.

Host memory holds one window of per-sequence and per-token arrays (plus one store chunk per streamed
dim), not the shard, so a shard of any size runs in flat memory. The store is written like any other
(``<path>.tmp-<pid>``, invariant re-checked from disk, marker last, then renamed): a killed extraction
leaves nothing a rerun would trust.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from polyroute.models.adapter import MoEAdapter
from polyroute.routing.capture import RoutingPass, empty_shard, validate_inputs
from polyroute.routing.store import AGGREGATES, StoreWriter, to_dataset, window_blocks

log = logging.getLogger(__name__)


def extract_to_store(
    model,
    tokenizer,
    adapter: MoEAdapter,
    texts: Sequence[str],
    languages_of_texts: Sequence[str],
    seq_ids: Sequence[str],
    parallel_ids: Sequence[str],
    out: str | os.PathLike,
    attrs: Mapping[str, Any],
    *,
    languages: Sequence[str],
    batch_tokens: int = 8192,
    max_length: int = 512,
    per_token: bool = False,
    window_tokens: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Route `texts` through `model` and write the routing store at `out`; returns the aggregates.

    The store equals ``write_store(to_dataset(extract_shard(...), attrs), out)`` with the same settings.
    """
    validate_inputs(texts, languages_of_texts, seq_ids, parallel_ids, languages, batch_tokens, max_length)
    routing_pass = RoutingPass(model, tokenizer, adapter, list(texts), list(languages_of_texts),
                               languages=list(languages), batch_tokens=batch_tokens, max_length=max_length,
                               per_token=per_token, window_tokens=window_tokens, progress=progress)
    template = to_dataset(empty_shard(routing_pass), attrs)
    labels = [np.asarray(values, dtype=object) for values in (seq_ids, languages_of_texts, parallel_ids)]  # once, sliced per window
    with StoreWriter(out, template) as writer:
        for window in routing_pass.windows():
            for dim, block in window_blocks(window, *labels).items():
                writer.append(dim, block)
        aggregates = routing_pass.aggregates()
        values = xr.Dataset({name: (template[name].dims, aggregates[name]) for name in AGGREGATES})
        writer.finish(template.attrs, values=values)  # re-checks the invariant from disk
    log.info("wrote %s (%d tokens)", out, int(aggregates["tokens"].sum()))
    return aggregates
