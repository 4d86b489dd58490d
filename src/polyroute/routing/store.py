"""The routing store (DESIGN "Routing store"): ShardRouting -> xarray Dataset -> Zarr v3, written safely.

Layout: coords ``language``, ``layer``, ``expert``; aggregates ``count``/``gate_sum``/``prob_sum``
``(language, layer, expert)`` and ``tokens(language)``; per-sequence ``seq_*`` along ``sequence``;
optional per-token ``expert_ids``/``expert_weights`` ``(token, layer, topk)``, ``token_id(token)``,
``token_sequence(token)``. Per sequence: ``seq_count``, ``seq_gate_sum`` (the routing weights the model
applied, Bandarkar's divergence input) and ``seq_prob_sum`` ``(sequence, layer, expert)`` float32, which
add up over a language's sequences to ``count``, ``gate_sum`` and ``prob_sum`` (checked by
``ShardRouting.check_invariant``). Strings are stored as variable-length UTF-8, so ``xr.open_zarr`` gives str.

Chunking: along ``token`` and ``sequence`` only (every chunk holds all layers, experts and top-k
slots), sized so that one chunk of the widest variable is about 32 MiB uncompressed, a power of two,
clamped to [2^16, 2^18] tokens and [2^8, 2^16] sequences. Chunk sizes depend on (L, E, k) only, so a
gathered store is chunked exactly like a single-shard one. Codecs: zarr 3's defaults (zstd).

Writing (``write_store``, ``gather`` in shards.py and ``extract_to_store`` in stream.py, through ``StoreWriter``): everything goes into
``<path>.tmp-<pid>``; along ``token``/``sequence`` data are appended chunk by chunk, so memory stays
bounded; then the invariant ``sum_i count[g, l, i] == k * tokens[g]`` (and token/sequence totals) is
re-checked from disk, group attrs and consolidated metadata are written, then the completion marker,
and the directory is renamed onto ``<path>``.

Completion marker ``<path>/.complete`` (JSON, written last)::

    {"format": "polyroute-store/1", "shapes": {"<var>": [dim sizes], ...},
     "sha256": "<hex digest of the digested variables' values>", "digested": ["count", ...],
     "created": "<UTC ISO time>"}

``digested`` lists the variables the digest covers (every one outside ``token``/``sequence``; a marker
without it covers the aggregates). ``is_complete(path)`` trusts a store only if the marker parses and
every array's shape on disk matches ``shapes``; ``open_store`` also recomputes the digest and re-checks
the invariant, so a store edited after writing is refused. A store is replaced only by a store writer
(its marker's ``format``), never while another process writes it (``<path>.lock``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from polyroute.atomic import MARKER_NAME, atomic_dir, read_marker, utc_now, write_marker
from polyroute.errors import UserError
from polyroute.routing.records import ShardRouting, check_counts, expert_id_dtype

STORE_FORMAT = "polyroute-store/1"
AGGREGATES = ("count", "gate_sum", "prob_sum", "tokens")
STREAM_DIMS = ("sequence", "token")
_CHUNK_BYTES = 32 * 2**20
_CHUNK_LIMITS = {"token": (2**16, 2**18), "sequence": (2**8, 2**16)}
_STR = np.dtypes.StringDType()


def chunk_size(dim: str, bytes_per_item: int) -> int:
    """Items per chunk along ``dim`` ("token" or "sequence"): ~32 MiB of the widest variable, power of 2."""
    lo, hi = _CHUNK_LIMITS[dim]
    n = max(1, _CHUNK_BYTES // max(1, bytes_per_item))
    n = 1 << (n.bit_length() - 1)  # round down to a power of two
    return int(min(hi, max(lo, n)))


def _strings(values: Iterable[Any], name: str) -> np.ndarray:
    arr = np.asarray(list(values), dtype=object)
    for v in arr:
        if not isinstance(v, str):
            raise ValueError(f"{name} must hold strings, got {v!r} ({type(v).__name__})")
    return arr.astype(_STR)


def _expect_shape(name: str, arr: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if arr is None:
        raise ValueError(f"ShardRouting.{name} is missing")
    arr = np.asarray(arr)
    if arr.shape != shape:
        raise ValueError(f"ShardRouting.{name} has shape {arr.shape}, expected {shape}")
    return arr


def to_dataset(shard: ShardRouting, attrs: Mapping[str, Any]) -> xr.Dataset:
    """The routing-store Dataset of one shard, after validating shapes, dtypes and the invariant.

    ``attrs`` (see ``polyroute.atomic.provenance``) become the Dataset's attrs; ``num_experts`` and
    ``top_k`` are taken from the shard and must agree with ``attrs`` where given there.
    """
    G, L, E, k = len(shard.languages), len(shard.layers), int(shard.num_experts), int(shard.top_k)
    if len(set(shard.languages)) != G:
        raise ValueError(f"ShardRouting.languages has duplicates: {shard.languages}")
    if len(set(shard.layers)) != L:
        raise ValueError(f"ShardRouting.layers has duplicates: {shard.layers}")
    if E < 1 or not 1 <= k <= E:
        raise ValueError(f"ShardRouting needs 1 <= top_k <= num_experts, got top_k={k} num_experts={E}")
    for key, val in (("num_experts", E), ("top_k", k)):
        if key in attrs and int(attrs[key]) != val:
            raise ValueError(f"attrs[{key!r}]={attrs[key]!r} disagrees with the shard's {key}={val}")
    count = _expect_shape("count", shard.count, (G, L, E)).astype(np.int64, copy=False)
    gate_sum = _expect_shape("gate_sum", shard.gate_sum, (G, L, E)).astype(np.float64, copy=False)
    prob_sum = _expect_shape("prob_sum", shard.prob_sum, (G, L, E)).astype(np.float64, copy=False)
    tokens = _expect_shape("tokens", shard.tokens, (G,)).astype(np.int64, copy=False)
    shard.check_invariant()

    S = len(shard.seq_id)
    seq_language = _strings(_expect_shape("seq_language", shard.seq_language, (S,)), "seq_language")
    unknown = sorted(set(seq_language.tolist()) - set(shard.languages))
    if unknown:
        raise ValueError(f"seq_language has languages not in ShardRouting.languages: {unknown}")
    seq_tokens = _expect_shape("seq_tokens", shard.seq_tokens, (S,)).astype(np.int64, copy=False)
    per_lang = {g: int(seq_tokens[seq_language == g].sum()) for g in shard.languages}
    for g, t in zip(shard.languages, tokens.tolist()):
        if per_lang[g] != t:
            raise ValueError(f"seq_tokens of language {g} sum to {per_lang[g]}, but tokens[{g}]={t}")

    lang = ("language", "layer", "expert")
    data: dict[str, tuple] = {
        "count": (lang, count),
        "gate_sum": (lang, gate_sum),
        "prob_sum": (lang, prob_sum),
        "tokens": (("language",), tokens),
        **_sequence_vars(shard.seq_id, seq_language, _expect_shape("seq_parallel_id", shard.seq_parallel_id, (S,)),
                         seq_tokens, _expect_shape("seq_count", shard.seq_count, (S, L, E)),
                         _expect_shape("seq_gate_sum", shard.seq_gate_sum, (S, L, E)),
                         _expect_shape("seq_prob_sum", shard.seq_prob_sum, (S, L, E))),
    }
    per_token = (shard.expert_ids, shard.expert_weights, shard.token_id, shard.token_sequence)
    if any(a is not None for a in per_token):
        N = int(tokens.sum())
        ids = _expect_shape("expert_ids", shard.expert_ids, (N, L, k))
        id_dtype = expert_id_dtype(E)
        if ids.size and (ids.min() < 0 or ids.max() >= E):
            raise ValueError(f"expert_ids must lie in [0, {E}), got range [{ids.min()}, {ids.max()}]")
        tseq = _expect_shape("token_sequence", shard.token_sequence, (N,)).astype(np.int64, copy=False)
        if N and (tseq.min() < 0 or tseq.max() >= S or np.any(np.diff(tseq) < 0)):
            raise ValueError("token_sequence must be non-decreasing indices into the shard's sequences")
        if N and not np.array_equal(np.bincount(tseq, minlength=S), seq_tokens):
            raise ValueError("token_sequence disagrees with seq_tokens (tokens per sequence)")
        data.update(_token_vars(ids, id_dtype, _expect_shape("expert_weights", shard.expert_weights, (N, L, k)),
                                _expect_shape("token_id", shard.token_id, (N,)), tseq))
    coords = {
        "language": ("language", _strings(shard.languages, "languages")),
        "layer": ("layer", np.asarray(shard.layers, dtype=np.int64)),
        "expert": ("expert", np.arange(E, dtype=np.int64)),
    }
    out_attrs = dict(attrs)
    out_attrs.update(num_experts=E, top_k=k)
    return xr.Dataset(data, coords=coords, attrs=out_attrs)


def _sequence_vars(seq_id, seq_language, seq_parallel_id, seq_tokens, seq_count, seq_gate_sum,
                   seq_prob_sum) -> dict[str, tuple]:
    """The per-sequence variables of a store (names, dims, dtypes): one definition for shards and windows."""
    seq = ("sequence", "layer", "expert")
    return {
        "seq_id": (("sequence",), _strings(seq_id, "seq_id")),
        "seq_language": (("sequence",), _strings(seq_language, "seq_language")),
        "seq_parallel_id": (("sequence",), _strings(seq_parallel_id, "seq_parallel_id")),
        "seq_tokens": (("sequence",), np.asarray(seq_tokens).astype(np.int64, copy=False)),
        "seq_count": (seq, np.asarray(seq_count).astype(np.float32, copy=False)),
        "seq_gate_sum": (seq, np.asarray(seq_gate_sum).astype(np.float32, copy=False)),
        "seq_prob_sum": (seq, np.asarray(seq_prob_sum).astype(np.float32, copy=False)),
    }


def _token_vars(expert_ids, id_dtype, expert_weights, token_id, token_sequence) -> dict[str, tuple]:
    """The per-token variables of a store."""
    tok = ("token", "layer", "topk")
    return {
        "expert_ids": (tok, np.asarray(expert_ids).astype(id_dtype, copy=False)),
        "expert_weights": (tok, np.asarray(expert_weights).astype(np.float16, copy=False)),
        "token_id": (("token",), np.asarray(token_id).astype(np.int32, copy=False)),
        "token_sequence": (("token",), np.asarray(token_sequence).astype(np.int64, copy=False)),
    }


def window_blocks(window, seq_id: np.ndarray, seq_language: np.ndarray, seq_parallel_id: np.ndarray) -> dict[str, xr.Dataset]:
    """A ``RoutingWindow``'s sequences (and tokens) as blocks for ``StoreWriter.append``, by streamed dim.

    ``seq_id``/``seq_language``/``seq_parallel_id`` are the whole shard's arrays; the window takes its slice.
    """
    part = slice(window.start, window.start + len(window.seq_tokens))
    blocks = {"sequence": xr.Dataset(_sequence_vars(seq_id[part], seq_language[part], seq_parallel_id[part],
                                                    window.seq_tokens, window.seq_count, window.seq_gate_sum,
                                                    window.seq_prob_sum))}
    if window.expert_ids is not None:  # ids come in the store's compact dtype already
        blocks["token"] = xr.Dataset(_token_vars(window.expert_ids, window.expert_ids.dtype, window.expert_weights,
                                                 window.token_id, window.token_sequence))
    return blocks


def check_store_invariant(ds: xr.Dataset) -> None:
    """Raise ValueError unless the routing invariants hold on ``ds`` (aggregates loaded, not tokens).

    ``sum_i count[g, l, i] == k * tokens[g]`` for every language and layer; when present, the sequences'
    tokens sum to the languages' tokens and there is one per-token row per counted token.
    """
    check_counts(ds["count"].transpose("language", "layer", "expert").values, ds["tokens"].values,
                 int(ds.attrs["top_k"]), [str(g) for g in ds.language.values], ds.layer.values)
    tokens = ds["tokens"].values
    if "seq_tokens" in ds and int(ds["seq_tokens"].sum()) != int(tokens.sum()):
        raise ValueError(f"seq_tokens sum to {int(ds['seq_tokens'].sum())}, tokens to {int(tokens.sum())}")
    if "token" in ds.sizes and ds.sizes["token"] != int(tokens.sum()):
        raise ValueError(f"{ds.sizes['token']} per-token rows for {int(tokens.sum())} counted tokens")


def _bytes_per_item(ds: xr.Dataset, dim: str) -> int:
    widths = [int(np.prod([v.sizes[d] for d in v.dims if d != dim])) * v.dtype.itemsize
              for v in ds.data_vars.values() if dim in v.dims and v.dtype != _STR]
    return max(widths, default=8)


class StoreWriter:
    """Writes one store into ``<path>.tmp-<pid>``: a base Dataset, then appended blocks, then finish().

    Variables along ``token``/``sequence`` start empty and grow by ``append``; blocks are buffered and
    flushed in whole chunks, so every chunk is written once and memory holds at most about one chunk
    per streamed dim. Use as a context manager: leaving it with an error removes the temporary.
    """

    def __init__(self, path: str | os.PathLike, template: xr.Dataset, chunks: Mapping[str, int] | None = None):
        self.path = Path(path)
        self._ctx = atomic_dir(self.path, STORE_FORMAT)
        self._tmp: Path | None = None
        self._template = _vlen_strings(template.drop_encoding())  # opened stores carry encodings we replace
        self._chunks = {d: chunk_size(d, _bytes_per_item(template, d)) for d in STREAM_DIMS}
        for d, n in (chunks or {}).items():  # explicit sizes: tests and tuning
            if d not in STREAM_DIMS or int(n) < 1:
                raise ValueError(f"chunks must map {STREAM_DIMS} to positive sizes, got {d!r}: {n!r}")
            self._chunks[d] = int(n)
        self._buffers: dict[str, list[xr.Dataset]] = {d: [] for d in STREAM_DIMS}
        self._buffered = dict.fromkeys(STREAM_DIMS, 0)
        self._finished = False

    def __enter__(self) -> StoreWriter:
        self._tmp = self._ctx.__enter__()
        try:
            self._write_base()
        except BaseException as e:
            self._ctx.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def _write_base(self) -> None:
        template = self._template
        for dim in STREAM_DIMS:
            if dim in template.coords:
                raise ValueError(f"a coordinate along the streamed dim {dim!r} is not supported; store it as a variable")
        base = template.isel({d: slice(0, 0) for d in STREAM_DIMS if d in template.dims})
        base.attrs = {}
        encoding = {
            name: {"chunks": tuple(self._chunks[d] if d in STREAM_DIMS else var.sizes[d] for d in var.dims)}
            for name, var in template.data_vars.items()
            if any(d in STREAM_DIMS for d in var.dims)
        }
        base.to_zarr(self._tmp, mode="w", zarr_format=3, consolidated=False, encoding=encoding)

    def append(self, dim: str, block: xr.Dataset) -> None:
        """Append ``block`` (only variables along ``dim``) at the end of ``dim``."""
        if block.sizes.get(dim, 0) == 0:
            return
        self._buffers[dim].append(block)
        self._buffered[dim] += block.sizes[dim]
        if self._buffered[dim] >= self._chunks[dim]:
            self._flush(dim, final=False)

    def append_from(self, ds: xr.Dataset, dim: str,
                    adjust: Callable[[xr.Dataset], xr.Dataset] | None = None) -> None:
        """Append ``ds``'s variables along ``dim``, reading one chunk at a time; ``adjust`` edits each block."""
        names = [n for n, v in ds.data_vars.items() if dim in v.dims]
        if not names:
            return
        step = self._chunks[dim]
        for start in range(0, ds.sizes[dim], step):
            block = ds[names].isel({dim: slice(start, start + step)})
            block = block.drop_vars(list(block.coords)).drop_encoding().drop_attrs().load()
            block = _vlen_strings(block)
            self.append(dim, adjust(block) if adjust else block)

    def _flush(self, dim: str, final: bool) -> None:
        if not self._buffers[dim]:
            return
        joined = xr.concat(self._buffers[dim], dim=dim, data_vars="all", coords="minimal", compat="override",
                           join="exact") if len(self._buffers[dim]) > 1 else self._buffers[dim][0]
        n = joined.sizes[dim]
        cut = n if final else n - n % self._chunks[dim]
        if cut:
            joined.isel({dim: slice(0, cut)}).to_zarr(self._tmp, append_dim=dim, consolidated=False)
        rest = joined.isel({dim: slice(cut, n)})
        self._buffers[dim] = [rest] if rest.sizes[dim] else []
        self._buffered[dim] = n - cut

    def finish(self, attrs: Mapping[str, Any], values: xr.Dataset | None = None) -> None:
        """Flush, re-check invariants from disk, write attrs, metadata and the marker, then publish.

        ``values``: variables not along a streamed dim whose final values were not known when the
        template was written (the aggregates of a streamed extraction); they overwrite the template's.
        """
        for dim in STREAM_DIMS:
            self._flush(dim, final=True)
        if values is not None:
            if any(d in STREAM_DIMS for v in values.data_vars.values() for d in v.dims):
                raise ValueError("finish(values=...) takes variables outside the streamed dims only")
            values.drop_vars(list(values.coords)).drop_attrs().to_zarr(self._tmp, mode="r+", consolidated=False)
        group = zarr.open_group(self._tmp, mode="r+")
        group.attrs.put(json.loads(json.dumps(dict(attrs), default=_plain)))  # replace: appends leave attrs behind
        ds = xr.open_zarr(self._tmp, consolidated=False)
        if "count" in ds and "tokens" in ds:
            check_store_invariant(ds)
        with warnings.catch_warnings():  # zarr warns that v3 consolidated metadata is an extension
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(self._tmp, zarr_format=3)
        write_marker(self._tmp, {
            "format": STORE_FORMAT,
            "shapes": _shapes(self._tmp),
            "sha256": _aggregate_digest(ds, _digested(ds)),
            "digested": _digested(ds),
            "created": utc_now(),
        })
        self._ctx.__exit__(None, None, None)
        self._finished = True

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._ctx.__exit__(exc_type, exc, tb)
        elif not self._finished:  # left without finish(): nothing to publish
            self._ctx.__exit__(RuntimeError, RuntimeError("StoreWriter left without finish()"), None)


def _vlen_strings(ds: xr.Dataset) -> xr.Dataset:
    """Fixed-width numpy strings -> variable-length UTF-8 (zarr v3 has no spec for fixed-width ones)."""
    fixed = [n for n, v in ds.variables.items() if v.dtype.kind == "U"]
    return ds.assign({n: ds[n].astype(_STR) for n in fixed if n in ds.data_vars}).assign_coords(
        {n: ds[n].astype(_STR) for n in fixed if n in ds.coords}) if fixed else ds


def _plain(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"attribute value of type {type(o).__name__} is not JSON-serialisable")


def _shapes(path: Path) -> dict[str, list[int]]:
    # read each array's zarr.json directly: cheap, and zarr would warn about the marker file
    shapes = {}
    for meta in sorted(Path(path).glob("*/zarr.json")):
        with open(meta, encoding="utf-8") as f:
            m = json.load(f)
        if m.get("node_type") == "array":
            shapes[meta.parent.name] = list(m["shape"])
    return shapes


def _digested(ds: xr.Dataset) -> list[str]:
    """The variables the marker's digest covers: every one outside the streamed dims (small, G x L x E)."""
    return sorted(name for name, var in ds.data_vars.items() if not set(var.dims) & set(STREAM_DIMS))


def _aggregate_digest(ds: xr.Dataset, names: Iterable[str] = AGGREGATES) -> str:
    h = hashlib.sha256()
    for name in names:
        if name in ds:
            h.update(name.encode())
            values = ds[name].values
            if values.dtype.kind in "OTU":  # strings: their text, not the array's pointers
                h.update("\0".join(map(str, values.ravel().tolist())).encode("utf-8"))
            else:
                h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def write_store(ds: xr.Dataset, path: str | os.PathLike, chunks: Mapping[str, int] | None = None) -> None:
    """Write ``ds`` to the Zarr v3 store ``path`` atomically, with the completion marker last.

    Works on any Dataset (routing store or not); the routing invariant is checked when ``count`` and
    ``tokens`` are present (then ``attrs["top_k"]`` is required). Variables along ``token``/``sequence``
    are written in chunk-sized blocks, so a lazily opened ``ds`` is never loaded whole. ``chunks``
    overrides the chunk sizes along ``token``/``sequence``.
    """
    # labels handed out as Python strings (open_store) go back to zarr's variable-width strings
    labels = [name for name, var in ds.variables.items() if var.dtype == object]
    ds = ds.assign({n: ds[n].astype(_STR) for n in labels if n not in ds.coords}).assign_coords(
        {n: ds[n].astype(_STR) for n in labels if n in ds.coords}
    )
    if "count" in ds and "tokens" in ds:
        if "top_k" not in ds.attrs:
            raise ValueError("routing Dataset has no attrs['top_k'], needed for the invariant check")
        check_store_invariant(ds)
    with StoreWriter(path, ds, chunks) as writer:
        for dim in STREAM_DIMS:
            writer.append_from(ds, dim)
        writer.finish(ds.attrs)


def is_complete(path: str | os.PathLike) -> bool:
    """True when ``path`` has a valid completion marker whose array shapes match the arrays on disk."""
    marker = read_marker(path)
    if not marker or marker.get("format") != STORE_FORMAT or not isinstance(marker.get("shapes"), dict):
        return False
    try:
        return _shapes(Path(path)) == marker["shapes"]
    except Exception:  # unreadable metadata = incomplete
        return False


def verify_store(path: str | os.PathLike, ds: xr.Dataset) -> None:
    """UserError unless the marker's digest matches ``ds``'s values and, for routing, the invariant holds.

    Reads only the variables outside the streamed dims (G x L x E arrays) and ``seq_tokens``: about as
    cheap as opening the store (see ``open_store``).
    """
    marker = read_marker(path) or {}
    names = marker.get("digested", list(AGGREGATES))  # older markers: the aggregates
    if marker.get("sha256") != _aggregate_digest(ds, names):
        raise UserError(f"store {path}: its values differ from those its completion marker recorded (edited or "
                        "damaged after writing); rerun the step that writes it")
    if "count" in ds and "tokens" in ds and "top_k" in ds.attrs:
        try:
            check_store_invariant(ds)
        except ValueError as exc:
            raise UserError(f"store {path}: {exc}; rerun the step that writes it") from None


def open_store(path: str | os.PathLike) -> xr.Dataset:
    """Open a complete store lazily, its digest and invariant verified; UserError when it is not trusted."""
    if not Path(path).exists():
        raise UserError(f"no store at {path}; run the step that writes it first")
    if not is_complete(path):
        raise UserError(f"store {path} is incomplete (no valid {MARKER_NAME} marker); rerun the step that writes it")
    ds = xr.open_zarr(path, consolidated=True)
    verify_store(path, ds)
    # numpy's variable-width StringDType (what zarr 3 returns) does not cast to fixed-width str, which
    # much of numpy/pandas expects: hand labels out as Python-string object arrays instead
    strings = [name for name, var in ds.variables.items() if var.dtype.kind == "T"]
    return ds.assign({name: ds[name].astype(object) for name in strings if name not in ds.coords}).assign_coords(
        {name: ds[name].astype(object) for name in strings if name in ds.coords}
    )
