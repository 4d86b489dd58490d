"""Sharded extraction plumbing: which sequences a shard routes, and gathering shard stores into one.

Sharding is contiguous: shard ``i`` of ``N`` takes positions ``[i*n//N, (i+1)*n//N)`` of the global
sequence list (sizes differ by at most one). So that every shard still sees every language (balanced
token counts, all languages progressing together), order the list with ``interleaved_order`` first:
by parallel id, then language, so translations of one sentence sit side by side. Contiguity makes the
gather a plain concatenation in shard order: the global sequence order is restored, per-token arrays
stay grouped by sequence in that order, and ``token_sequence`` only needs an offset, so a gather of N
shards equals a single-shard run (float sums ``gate_sum``/``prob_sum`` up to summation order).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from polyroute.atomic import utc_now
from polyroute.errors import UserError
from polyroute.routing.store import StoreWriter, check_store_invariant, is_complete, verify_store

# attrs every shard of one store must agree on (config_hash may differ when only unrelated settings
# changed between shard runs; the gathered store records the caller's attrs)
MUST_MATCH = ("model", "model_revision", "model_type", "num_experts", "top_k", "router_output",
              "dataset", "split", "max_length")
SHARD_ATTRS = ("shard_index", "shard_count", "created")
AGGREGATES = ("count", "gate_sum", "prob_sum", "tokens")


def shard_indices(n_sequences: int, n_shards: int, i: int) -> slice:
    """The contiguous slice of the global sequence list that shard ``i`` of ``n_shards`` routes."""
    if n_sequences < 0:
        raise ValueError(f"n_sequences must be >= 0, got {n_sequences}")
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    if not 0 <= i < n_shards:
        raise ValueError(f"shard index {i} outside 0..{n_shards - 1}")
    return slice(i * n_sequences // n_shards, (i + 1) * n_sequences // n_shards)


def interleaved_order(languages: Sequence[str], parallel_ids: Sequence[str]) -> np.ndarray:
    """Permutation ordering sequences by (parallel id, language), stable: apply before sharding.

    Parallel ids and languages are compared as strings; ties keep their input order.
    """
    if len(languages) != len(parallel_ids):
        raise ValueError(f"{len(languages)} languages but {len(parallel_ids)} parallel ids")
    return np.array(sorted(range(len(languages)), key=lambda j: (str(parallel_ids[j]), str(languages[j]))),
                    dtype=np.int64)


def _open_shards(shard_paths: Sequence[str | os.PathLike]) -> list[xr.Dataset]:
    if not shard_paths:
        raise ValueError("gather needs at least one shard store")
    shards = []
    for p in shard_paths:
        if not is_complete(p):
            raise UserError(f"shard store {p} is {'incomplete (no valid .complete marker)' if Path(p).exists() else 'missing'}; "
                            "rerun its extraction")
        shards.append(xr.open_zarr(p, consolidated=True))
        verify_store(p, shards[-1])
    return shards


def _check_compatible(shards: list[xr.Dataset], paths: Sequence[str | os.PathLike]) -> None:
    first = shards[0]
    for j, ds in enumerate(shards):
        for key in MUST_MATCH:
            if ds.attrs.get(key) != first.attrs.get(key):
                raise ValueError(f"shard {paths[j]} has {key}={ds.attrs.get(key)!r}, "
                                 f"shard {paths[0]} has {first.attrs.get(key)!r}")
        if not np.array_equal(ds.layer.values, first.layer.values):
            raise ValueError(f"shard {paths[j]} has layers {ds.layer.values.tolist()}, "
                             f"shard {paths[0]} has {first.layer.values.tolist()}")
        if ds.sizes["expert"] != first.sizes["expert"]:
            raise ValueError(f"shard {paths[j]} has {ds.sizes['expert']} experts, shard {paths[0]} {first.sizes['expert']}")
        if ("token" in ds.sizes) != ("token" in first.sizes):
            raise ValueError(f"shard {paths[j]} and shard {paths[0]} disagree on per-token arrays")
        if "shard_index" in ds.attrs and int(ds.attrs["shard_index"]) != j:
            raise ValueError(f"shard {paths[j]} is shard_index {ds.attrs['shard_index']} but given at position {j}")
        if "shard_count" in ds.attrs and int(ds.attrs["shard_count"]) != len(shards):
            raise ValueError(f"shard {paths[j]} is one of shard_count={ds.attrs['shard_count']}, "
                             f"but {len(shards)} shards were given")
    n = sum(ds.sizes["sequence"] for ds in shards)
    for j, ds in enumerate(shards):
        sl = shard_indices(n, len(shards), j)
        if ds.sizes["sequence"] != sl.stop - sl.start:
            raise ValueError(f"shard {paths[j]} has {ds.sizes['sequence']} sequences, expected "
                             f"{sl.stop - sl.start} for shard {j} of {len(shards)} over {n}: shards missing or out of order?")


def gather(shard_paths: Sequence[str | os.PathLike], out_path: str | os.PathLike,
           attrs: Mapping[str, Any], languages: Sequence[str] | None = None,
           chunks: Mapping[str, int] | None = None) -> None:
    """Concatenate complete shard stores (given in shard order) into one routing store at ``out_path``.

    Aggregates are summed over shards with languages aligned (order: ``languages`` if given, else first
    appearance across shards); per-sequence and per-token arrays are appended shard by shard, one chunk
    at a time, with ``token_sequence`` offset to global sequence indices (``chunks`` as in
    ``write_store``). Output attrs: the attrs all
    shards share (minus shard-specific ones), updated with ``attrs``. Written atomically, marker last.
    """
    shards = _open_shards(shard_paths)
    _check_compatible(shards, shard_paths)
    for key in ("num_experts", "top_k"):
        if key in attrs and attrs[key] != shards[0].attrs.get(key):
            raise ValueError(f"attrs[{key!r}]={attrs[key]!r} disagrees with the shards' {shards[0].attrs.get(key)!r}")

    seen = list(dict.fromkeys(str(g) for ds in shards for g in ds.language.values))
    if languages is None:
        order = seen
    else:
        order = [str(g) for g in languages]
        missing = [g for g in seen if g not in order]
        if missing:
            raise ValueError(f"shards hold languages not in the given languages: {missing}")
    # aggregates are small (G x L x E): sum in memory
    summed = None
    for ds in shards:
        agg = ds[list(AGGREGATES)].load().reindex(language=np.array(order, dtype=object), fill_value=0)
        summed = agg if summed is None else summed + agg
    summed = summed.assign_coords(language=np.array(order, dtype=np.dtypes.StringDType()))

    common = {k: v for k, v in shards[0].attrs.items()
              if k not in SHARD_ATTRS and all(ds.attrs.get(k) == v for ds in shards[1:])}
    common.update(attrs)
    common.setdefault("created", utc_now())  # the gathered store's own creation time
    streamed = shards[0].drop_vars([*AGGREGATES, "language"])
    template = xr.merge([summed, streamed], join="outer", compat="override")
    template.attrs = common
    check_store_invariant(summed.assign_attrs(top_k=common["top_k"]))

    with StoreWriter(out_path, template, chunks) as writer:
        offset = 0
        for ds in shards:
            writer.append_from(ds, "sequence")
            writer.append_from(ds, "token", adjust=_offset_tokens(offset))
            offset += ds.sizes["sequence"]
        writer.finish(common)


def _offset_tokens(offset: int):
    def adjust(block: xr.Dataset) -> xr.Dataset:
        if "token_sequence" in block:
            block["token_sequence"] = block["token_sequence"] + np.int64(offset)
        return block
    return adjust
