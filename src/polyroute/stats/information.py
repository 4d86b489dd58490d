"""Information measures over routing distributions (METHODS section 3): entropy, JSD, similarity,
entropy-normalised divergence from a reference language, and specialisation I(Lang; Expert) / H(Lang).

All take xarray DataArrays with an `expert` dimension and return labelled arrays; JSD is in nats.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from polyroute.stats._core import entropy_nats, jsd_nats, normalised_divergence

# Bound on the temporary [block, language, layer, expert] array of the pairwise similarity.
_PAIR_BLOCK_ELEMENTS = 2**22


def check_log_base(log_base: float | str) -> float:
    """Return log_base as float ("e" allowed, as the config writes it), or raise when it cannot be a base."""
    try:
        base = float(np.e) if str(log_base).strip().lower() == "e" else float(log_base)
    except (TypeError, ValueError):
        base = float("nan")
    if not np.isfinite(base) or base <= 0 or base == 1:
        raise ValueError(f"log_base={log_base!r} must be a positive number other than 1 (e.g. 2 or e)")
    return base


def entropy(dist: xr.DataArray, *, log_base: float | str = np.e, normalise: bool = False) -> xr.DataArray:
    """Entropy -sum_i P_i log P_i over `expert`, in `log_base`; normalise=True divides by log E (0..1)."""
    base = check_log_base(log_base)
    h = xr.apply_ufunc(entropy_nats, dist, input_core_dims=[["expert"]])
    n_experts = dist.sizes["expert"]
    if normalise:
        out = h / np.log(n_experts)
        out.attrs = {"long_name": "normalised routing entropy", "normalised_by": "log(num_experts)", "range": "0..1"}
    else:
        out = h / np.log(base)
        out.attrs = {"long_name": "routing entropy", "log_base": base}
    return out


def jsd(p: xr.DataArray, q: xr.DataArray) -> xr.DataArray:
    """Jensen-Shannon divergence in nats between distributions over `expert` (broadcast on other dims)."""
    out = xr.apply_ufunc(jsd_nats, p, q, input_core_dims=[["expert"], ["expert"]])
    out.attrs = {"long_name": "Jensen-Shannon divergence", "units": "nats"}
    return out


def similarity(dist: xr.DataArray) -> xr.DataArray:
    """Pairwise routing similarity 1 - JSD / ln 2 (Chen), dims (language, language_b, layer), in [0, 1].

    Computed in blocks of languages so the [block, G, L, E] temporary stays small for 100 languages.
    """
    dist = dist.transpose("language", "layer", "expert")
    p = dist.values.astype(np.float64)
    n_lang = p.shape[0]
    per_row = max(1, int(np.prod(p.shape)))
    block = max(1, _PAIR_BLOCK_ELEMENTS // per_row)
    out = np.empty((n_lang, n_lang, p.shape[1]))
    for start in range(0, n_lang, block):
        stop = min(start + block, n_lang)
        out[start:stop] = jsd_nats(p[start:stop, None], p[None, :])
    out = 1.0 - out / np.log(2.0)
    # exact symmetry and unit diagonal regardless of rounding
    out = (out + out.transpose(1, 0, 2)) / 2.0
    out[np.arange(n_lang), np.arange(n_lang)] = 1.0
    langs = dist["language"].values
    return xr.DataArray(
        out,
        dims=("language", "language_b", "layer"),
        coords={"language": langs, "language_b": langs, "layer": dist["layer"].values},
        attrs={"long_name": "routing similarity", "formula": "1 - JSD / ln 2", "range": "0..1"},
    )


def divergence_from_reference(dist: xr.DataArray, reference: str) -> xr.Dataset:
    """JSD (nats) and entropy-normalised divergence D (Bandarkar) of every language from `reference`.

    D = JSD(P_r, P_g) / (ln E - (H(P_r) + H(P_g)) / 2), per layer, from pooled distributions.
    Returns a Dataset with `jsd` and `divergence`, dims (language, layer).
    """
    check_language(dist, reference, "reference language")
    ref = dist.sel(language=reference, drop=True)
    j = jsd(ref, dist)
    h = xr.apply_ufunc(entropy_nats, dist, input_core_dims=[["expert"]])
    h_ref = h.sel(language=reference, drop=True)
    d = xr.apply_ufunc(normalised_divergence, j, h_ref, h, kwargs={"num_experts": dist.sizes["expert"]})
    d.attrs = {
        "long_name": "entropy-normalised divergence from the reference (pooled tokens)",
        "formula": "JSD(P_r, P_g) / (ln E - (H_r + H_g) / 2)",
        "reference": reference,
        "aggregation": "pooled over all tokens of the language",
    }
    j.attrs.update(reference=reference)
    return xr.Dataset({"jsd": j.transpose("language", "layer"), "divergence": d.transpose("language", "layer")})


def specialisation(count: xr.DataArray) -> xr.DataArray:
    """Khandelwal's specialisation I(Lang; Expert) / H(Lang) per layer, from the joint of `count`.

    Each (token, chosen expert) is one event, so p(g, i) = count[g, i] / sum count. The ratio is
    independent of the log base; 0 for one language (H(Lang) = 0 gives NaN, there is nothing to explain).
    """
    c = count.transpose("layer", "language", "expert").values.astype(np.float64)
    total = c.sum(axis=(1, 2), keepdims=True)
    joint = c / np.where(total > 0, total, 1.0)
    p_lang = joint.sum(axis=2)
    p_exp = joint.sum(axis=1)
    h_lang = entropy_nats(p_lang, axis=1)
    h_exp = entropy_nats(p_exp, axis=1)
    h_joint = entropy_nats(joint.reshape(joint.shape[0], -1), axis=1)
    mi = np.maximum(h_lang + h_exp - h_joint, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(h_lang > 0, mi / np.where(h_lang > 0, h_lang, 1.0), np.nan)
    return xr.DataArray(
        ratio,
        dims=("layer",),
        coords={"layer": count["layer"].values},
        attrs={"long_name": "language specialisation", "formula": "I(Lang; Expert) / H(Lang)", "range": "0..1"},
    )


def check_language(da: xr.DataArray | xr.Dataset, language: str, what: str) -> None:
    """Raise a ValueError naming `what` when `language` is not a coordinate value."""
    langs = [str(x) for x in da["language"].values]
    if language not in langs:
        shown = ", ".join(langs[:10]) + (" ..." if len(langs) > 10 else "")
        raise ValueError(f"{what} {language!r} is not in the store's languages ({shown})")
