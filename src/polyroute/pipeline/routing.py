"""Steps `extract_routing` (one shard through the model) and `gather_routing` (shards -> one store)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from polyroute.atomic import config_hash, provenance
from polyroute.errors import UserError
from polyroute.pipeline.data import read_split, record_texts
from polyroute.routing.shards import gather, interleaved_order, shard_indices

log = logging.getLogger(__name__)


def extraction_hash(run_config: Mapping[str, Any]) -> str:
    """Hash of the settings that determine a routing store (recorded in its attrs)."""
    from polyroute.revisions import main_model  # other checkpoints do not determine this one's store

    return config_hash({key: run_config[key] for key in ("languages", "extraction")} | {"model": main_model(run_config["model"])}
                       | {"routing": run_config["datasets"]["routing"], "max_items": run_config["datasets"]["max_items"]})


def extract_routing(
    *,
    data_files: Sequence[str | os.PathLike],
    dataset: str,
    split: str | None,
    languages: Sequence[str],
    model: Mapping[str, Any],
    extraction: Mapping[str, Any],
    shard: int,
    shards: int,
    out: str | os.PathLike,
    run_config: Mapping[str, Any],
    device: str = "auto",
    per_language: int | None = None,
    edit_routing: Callable[[Any, Any], contextlib.AbstractContextManager] | None = None,
    attrs: Mapping[str, Any] | None = None,
    untrained_seed: int | None = None,
) -> None:
    """Route shard `shard` of `shards` of the dataset's sequences and write its store at `out`.

    Sequences are ordered by (parallel id, language) before the contiguous split into shards, so
    every shard holds whole groups of translations and every language. `per_language` keeps only the
    first that many sequences of each language (in that order); `edit_routing(model, adapter)` gives a
    context the extraction runs in (an intervention); `attrs` are added to the store's.
    `untrained_seed` routes through the architecture with fresh weights instead (the noise floor;
    recorded as the store's `untrained_seed` attribute)."""
    from polyroute.models import get_adapter
    from polyroute.models.loading import load_configured_model
    from polyroute.routing.stream import extract_to_store

    table = read_split(data_files, split, dataset, languages)  # every language has data, before the model loads
    table = table.iloc[interleaved_order(table["language"].tolist(), table["parallel_id"].tolist())]
    if per_language is not None:
        table = table.groupby("language", sort=False).head(per_language)
    part = table.iloc[shard_indices(len(table), shards, shard)]
    if part.empty:
        raise UserError(f"shard {shard} of {shards} is empty: extraction.shards exceeds the {len(table)} sequences")
    log.info("shard %d/%d: %d of %d sequences", shard, shards, len(part), len(table))
    net, tokenizer = load_configured_model(model, device=device, untrained_seed=untrained_seed)
    adapter = get_adapter(net)
    info = adapter.info()
    store_attrs = provenance(
        model=model["id"], model_revision=model.get("revision"), model_type=info.model_type,
        num_experts=info.num_experts, top_k=info.top_k, router_output=info.router_output_kind,
        dataset=dataset, split=split or "", max_length=extraction["max_length"],
        config_hash=extraction_hash(run_config), shard_index=shard, shard_count=shards,
        **({"untrained_seed": untrained_seed} if untrained_seed is not None else {}), **(attrs or {}),
    )
    # windows go to the store as they finish: memory stays flat however large the shard
    with edit_routing(net, adapter) if edit_routing is not None else contextlib.nullcontext():
        extract_to_store(
            net, tokenizer, adapter, record_texts(part, dataset), part["language"].tolist(),
            part["id"].astype(str).tolist(), part["parallel_id"].astype(str).tolist(), out, store_attrs,
            languages=list(languages), batch_tokens=extraction["batch_tokens"],
            max_length=extraction["max_length"], per_token=extraction["per_token"], progress=True,
        )


def gather_routing(shard_paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                   languages: Sequence[str] | None = None) -> None:
    """Concatenate complete shard stores into the dataset's routing store."""
    gather(shard_paths, out, attrs={}, languages=languages)
    log.info("gathered %d shards into %s", len(shard_paths), out)
