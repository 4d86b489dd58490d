"""The experts an intervention edits, from routing stores (METHODS section 7). Pure xarray, no torch.

Each function takes routing stores (datasets with `count(language, layer, expert)` and
`tokens(language)`, as `xr.open_zarr` gives them) and returns a bool (layer, expert) mask restricted to
the given model layers, plus the per-expert scores that ranked or weight them:
- `task_experts` (Bandarkar): Delta = English in-task activation frequency - English general-text
  frequency, experts with Delta > tau;
- `shared_source_experts` (Chen): W normalised over the source languages only (en, zh), each keeping
  its top m = 20 experts per layer; 0.3 < W_src < 0.7, scored by W_src (the s of `affinity`), as
  Chen et al.'s `steer/vllm_steer_polymath.py` (`get_target_shared_experts`) and run script do;
- `exclusive_experts` (Chen): W[language] > theta, the experts a masking experiment removes.
Layer windows are given in the papers' 48-layer units and scaled to the model's MoE layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from polyroute.stats.distributions import frequency
from polyroute.stats.experts import EXCLUSIVE, affinity, chen_shared_source_experts, expert_classes
from polyroute.stats.zones import round_half_up

REFERENCE_DEPTH = 48  # Qwen3-30B-A3B, the model the papers' windows are given for
# Chen's windows in 48-layer units, [start, stop): masking early / middle / late, steering
WINDOWS = {"early": (0, 5), "middle": (22, 27), "late": (43, 48), "steer": (10, 40)}


def window_layers(window: str | Sequence[int], moe_layers: Sequence[int]) -> list[int]:
    """The model layers of a window: a name of WINDOWS or [start, stop) in 48-layer units, scaled to the
    model's MoE layers by position (round half up), never empty."""
    if isinstance(window, str):
        if window not in WINDOWS:
            raise ValueError(f"window {window!r} is not one of {', '.join(WINDOWS)} (or [start, stop) of 48 layers)")
        start48, stop48 = WINDOWS[window]
    else:
        start48, stop48 = (int(v) for v in window)
    if not 0 <= start48 < stop48 <= REFERENCE_DEPTH:
        raise ValueError(f"window {list(window) if not isinstance(window, str) else window} must satisfy "
                         f"0 <= start < stop <= {REFERENCE_DEPTH}")
    n = len(moe_layers)
    start = min(round_half_up(start48 * n / REFERENCE_DEPTH), n - 1)
    stop = max(round_half_up(stop48 * n / REFERENCE_DEPTH), start + 1)
    return list(moe_layers[start:stop])


def _in_layers(mask: xr.DataArray, layers: Sequence[int]) -> xr.DataArray:
    known = [int(v) for v in mask["layer"].values]
    missing = [int(v) for v in layers if int(v) not in known]
    if missing:
        raise ValueError(f"layers {missing} are not in the routing store (its layers: {known})")
    return mask & mask["layer"].isin([int(v) for v in layers])


def _frequency_of(store: xr.Dataset, language: str, what: str) -> xr.DataArray:
    codes = [str(g) for g in store["language"].values]
    if language not in codes:
        raise ValueError(f"{what}: language {language!r} is not in the routing store ({codes})")
    tokens = store["tokens"].sel(language=language)
    if int(tokens) <= 0:
        raise ValueError(f"{what}: language {language!r} has no tokens in the routing store")
    return frequency(store["count"].sel(language=language, drop=True), tokens.drop_vars("language"))


def task_experts(task: xr.Dataset, general: xr.Dataset, layers: Sequence[int], language: str = "eng_Latn",
                 tau: float = 0.3) -> tuple[xr.DataArray, xr.DataArray]:
    """Bandarkar's task experts: (mask Delta > tau on `layers`, Delta) with Delta[l, i] = a_task - a_general
    of `language` (activation frequency count / tokens, each layer's row summing to k)."""
    if not np.isfinite(tau):
        raise ValueError(f"tau={tau!r} must be finite")
    a_task = _frequency_of(task, language, "task routing")
    a_general = _frequency_of(general, language, "general routing")
    if a_task.sizes != a_general.sizes or not (a_task["layer"].values == a_general["layer"].values).all():
        raise ValueError("the task and general routing stores have different layers or experts")
    delta = (a_task - a_general).load()
    delta.attrs = {"long_name": "in-task minus general activation frequency", "language": language}
    return _in_layers(delta > tau, layers).rename("task_expert"), delta.rename("delta")


CHEN_STEERING_SOURCES = ("eng_Latn", "zho_Hans")  # their run script's --target_lang en,zh
CHEN_STEERING_TOP_M = 20  # their run script's K for steering (15 for analysis and masking)


def shared_source_experts(routing: xr.Dataset, source: str, layers: Sequence[int],
                          top_m: int = CHEN_STEERING_TOP_M, low: float = 0.3, high: float = 0.7,
                          sources: Sequence[str] | None = CHEN_STEERING_SOURCES) -> tuple[xr.DataArray, xr.DataArray]:
    """Chen's steering set: (mask low < W_src < high on `layers`, W_src), W the normalised affinity over
    `sources` (None = every language of the store, polyroute's earlier convention), each source
    keeping its top `top_m` experts per layer. With the two sources en and zh, 0.3 < W_en < 0.7 is
    their rule "some W > 0 and every W < 0.7"."""
    codes = [str(g) for g in routing["language"].values]
    wanted = codes if sources is None else [str(g) for g in sources]
    missing = [g for g in wanted if g not in codes]
    if missing:
        raise ValueError(f"steering sources {missing} are not in the routing store ({codes})")
    if source not in wanted:
        raise ValueError(f"steering sources {wanted} do not include the source {source!r}")
    sub = routing[["count", "tokens"]].sel(language=wanted)
    W = affinity(sub["count"].load(), sub["tokens"].load(), top_m)
    mask = chen_shared_source_experts(W, source, low, high)
    return _in_layers(mask, layers), W.sel(language=source, drop=True).rename("affinity")


def exclusive_experts(routing: xr.Dataset, language: str, layers: Sequence[int], top_m: int = 15,
                      theta: float = 0.4) -> tuple[xr.DataArray, xr.DataArray]:
    """Chen's masking set: (mask W[language] > theta on `layers`, W[language])."""
    W = affinity(routing["count"].load(), routing["tokens"].load(), top_m)
    codes = [str(g) for g in W["language"].values]
    if language not in codes:
        raise ValueError(f"exclusive experts: language {language!r} is not in the routing store ({codes})")
    classes = expert_classes(W, theta).sel(language=language, drop=True)
    return _in_layers(classes == EXCLUSIVE, layers), W.sel(language=language, drop=True).rename("affinity")


def expert_list(mask: xr.DataArray, scores: xr.DataArray, max_per_layer: int | None = None
                ) -> tuple[list[list[int]], list[float]]:
    """([[layer, expert], ...], [score, ...]) of the masked experts, by layer then expert; with
    `max_per_layer`, each layer keeps its highest-scoring ones (ties: lower expert id)."""
    if max_per_layer is not None and max_per_layer < 1:
        raise ValueError(f"max_per_layer={max_per_layer!r} must be >= 1")
    mask = mask.transpose("layer", "expert")
    scores = scores.transpose("layer", "expert")
    pairs, values = [], []
    ids = mask["expert"].values
    for j, layer in enumerate(mask["layer"].values):
        chosen = np.flatnonzero(mask.values[j])
        if max_per_layer is not None and len(chosen) > max_per_layer:
            order = np.argsort(-scores.values[j][chosen], kind="stable")
            chosen = np.sort(chosen[order[:max_per_layer]])
        pairs += [[int(layer), int(ids[e])] for e in chosen]
        values += [float(scores.values[j][e]) for e in chosen]
    return pairs, values
