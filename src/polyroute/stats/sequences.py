"""Streaming helpers over the per-sequence and per-token arrays of a routing store.

dask is not available, so large stores are read as numpy chunks along `sequence` or `token`
(a slice of a lazily opened zarr variable loads only that slice).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr


def chunk_slices(n: int, chunk: int) -> Iterator[slice]:
    """Consecutive slices of at most `chunk` items covering range(n)."""
    if chunk < 1:
        raise ValueError(f"chunk size {chunk!r} must be >= 1")
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def language_index(values: np.ndarray, languages: np.ndarray) -> np.ndarray:
    """Position of each value in `languages` (-1 where absent), vectorised for 10^6 labels."""
    # zarr stores give numpy's variable-width StringDType, which does not cast to fixed-width str
    languages = np.asarray(languages).astype(object).astype(str)
    order = np.argsort(languages)
    values = np.asarray(values).astype(object).astype(str)
    pos = np.searchsorted(languages[order], values)
    pos = np.clip(pos, 0, len(languages) - 1)
    found = languages[order][pos] == values
    return np.where(found, order[pos], -1)


def accumulate_by_language(sums: np.ndarray, counts: np.ndarray, lang: np.ndarray, values: np.ndarray) -> None:
    """Add finite rows of values [n, L] into sums[G, L] and counts[G, L] grouped by lang[n] (in place)."""
    ok = (lang >= 0)[:, None] & np.isfinite(values)
    np.add.at(sums, lang, np.where(ok, values, 0.0))
    np.add.at(counts, lang, ok.astype(np.int64))


def as_mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """sums / counts with NaN where nothing was counted."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)


def values(ds: xr.Dataset, name: str, sl: slice | None = None) -> np.ndarray:
    """Numpy values of one variable (optionally one slice along its first dim), loading only that."""
    var = ds[name].variable
    return np.asarray(var[sl].values if sl is not None else var.values)
