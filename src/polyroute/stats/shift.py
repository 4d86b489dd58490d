"""Routing shift under an intervention (METHODS section 7): how a language's routing moves when router
logits are edited, measured on the same sequences routed with and without the edit.

The shift store (`results/<run>/interventions/<name>.zarr`) holds only the first `shift_items` sequences
per language, so the base side is the routing store restricted to exactly those sequences (matched on
language and sequence id, token counts checked), never the whole dataset: a difference in items would
read as a shift.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from polyroute.stats._core import jsd_nats
from polyroute.stats.sequences import language_index

__all__ = ["matched_counts", "routing_shift", "shift_table"]


def _keys(ds: xr.Dataset) -> pd.MultiIndex:
    """(language, sequence id) of every sequence; zarr gives StringDType, made plain str here."""
    return pd.MultiIndex.from_arrays([np.asarray(ds[name].values).astype(object).astype(str)
                                      for name in ("seq_language", "seq_id")])


def matched_counts(base: xr.Dataset, shifted: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """count(language, layer, expert) and tokens(language) of `base` over the sequences of `shifted`.

    Raises ValueError when a shifted sequence is not in `base` or has another number of tokens there
    (then the two runs did not see the same items and no shift can be read off them).
    """
    want, have = _keys(shifted), _keys(base)
    if not have.is_unique:
        raise ValueError("base routing store has repeated (seq_language, seq_id) pairs")
    positions = have.get_indexer(want)
    if (positions < 0).any():
        missing = want[positions < 0][0]
        raise ValueError(f"sequence {missing[1]!r} ({missing[0]}) of the shift store is not in the base store")
    base_tokens = np.asarray(base["seq_tokens"].values)[positions]
    if not np.array_equal(base_tokens, np.asarray(shifted["seq_tokens"].values)):
        raise ValueError("the shift store's sequences have other token counts in the base store (another tokenisation or max_length)")
    languages = shifted["language"].values
    lang = language_index(shifted["seq_language"].values, languages)
    seq_count = np.asarray(base["seq_count"].isel(sequence=positions).values, dtype=np.float64)
    count = np.zeros((len(languages), seq_count.shape[1], seq_count.shape[2]))
    np.add.at(count, lang, seq_count)
    tokens = np.bincount(lang, weights=base_tokens, minlength=len(languages))
    coords = {"language": languages, "layer": shifted["layer"].values, "expert": shifted["expert"].values}
    return (xr.DataArray(count, coords=coords, dims=("language", "layer", "expert"), name="count"),
            xr.DataArray(tokens, coords={"language": languages}, dims=("language",), name="tokens"))


def _edited_mask(experts: Sequence[Sequence[int]], layers: np.ndarray, n_experts: int) -> xr.DataArray:
    mask = np.zeros((len(layers), n_experts), dtype=bool)
    row = {int(layer): i for i, layer in enumerate(layers)}
    for layer, expert in experts:
        mask[row[int(layer)], int(expert)] = True
    return xr.DataArray(mask, coords={"layer": layers, "expert": np.arange(n_experts)}, dims=("layer", "expert"))


def routing_shift(base: xr.Dataset, shifted: xr.Dataset, experts: Sequence[Sequence[int]]) -> xr.Dataset:
    """Per (language, layer): `jsd`, the Jensen-Shannon divergence (nats) between the hard routing
    distributions count / (k T) without and with the intervention, and `edited_share_base` /
    `edited_share_shifted`, the share of the k T top-k slots that go to the edited `experts`
    ([layer, expert] pairs) without and with it (NaN in layers with no edited expert).

    Both sides are computed on the shifted store's sequences (see `matched_counts`).
    """
    top_k = int(shifted.attrs["top_k"])
    base_count, tokens = matched_counts(base, shifted)
    slots = top_k * tokens
    p_base = base_count / slots
    p_shifted = shifted["count"].astype(np.float64) / slots
    edited = _edited_mask(experts, shifted["layer"].values, shifted.sizes["expert"])
    touched = edited.any("expert")
    out = xr.Dataset({
        "jsd": xr.apply_ufunc(jsd_nats, p_base, p_shifted, input_core_dims=[["expert"], ["expert"]]),
        "edited_share_base": p_base.where(edited, 0.0).sum("expert").where(touched),
        "edited_share_shifted": p_shifted.where(edited, 0.0).sum("expert").where(touched),
        "edited_experts": edited.sum("expert"),
        "tokens": tokens,
    })
    out["jsd"].attrs = {"long_name": "JSD of routing with vs without the intervention", "units": "nats"}
    return out


def shift_table(shifts: dict[str, xr.Dataset]) -> pd.DataFrame:
    """One row per (intervention, language, layer) of `routing_shift` results keyed by intervention name."""
    columns = ["intervention", "language", "layer", "edited_experts", "tokens", "jsd", "edited_share_base",
               "edited_share_shifted"]
    frames = [ds.to_dataframe().reset_index().assign(intervention=name) for name, ds in shifts.items()]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
