"""Routing isolation (RISE): how many of their top experts two languages share, per layer."""

from __future__ import annotations

import numpy as np
import xarray as xr


def top_expert_overlap(freq: xr.DataArray, top_n: int) -> xr.DataArray:
    """|top_n(g) ∩ top_n(h)| / top_n per layer, dims (language, language_b, layer), in [0, 1].

    Top experts by activation frequency; ties at the n-th place go to the lower expert id (stable sort).
    """
    n_exp = freq.sizes["expert"]
    if not 1 <= top_n <= n_exp:
        raise ValueError(f"top_n={top_n!r} must be between 1 and the number of experts ({n_exp})")
    a = freq.transpose("language", "layer", "expert").values
    top = np.argsort(-a, axis=-1, kind="stable")[..., :top_n]
    member = np.zeros(a.shape, dtype=np.float32)  # [G, L, E] membership, not per-token one-hots
    np.put_along_axis(member, top, 1.0, axis=-1)
    shared = np.einsum("gle,hle->ghl", member, member) / top_n
    langs = freq["language"].values
    return xr.DataArray(
        shared.astype(np.float64),
        dims=("language", "language_b", "layer"),
        coords={"language": langs, "language_b": langs, "layer": freq["layer"].values},
        attrs={"long_name": "share of top experts in common", "top_n": int(top_n)},
    )
