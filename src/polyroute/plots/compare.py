"""Figures of a comparison (`polyroute.stats.compare.compare_members`): divergence over relative depth
per model (Bandarkar), specialisation and expert classes per layer across training steps, JSD between
languages across steps (Khandelwal), and the divergence-score correlation per model (Bandarkar).
Untrained members (the noise floor) are drawn as a band or a row of their own, never as a model."""

from __future__ import annotations

import os

import numpy as np
import xarray as xr
from matplotlib import colormaps

from polyroute.plots._common import new_figure, save
from polyroute.stats.compare import MODEL, UNTRAINED

__all__ = ["COMPARE_FIGURES", "plot_comparison"]

COMPARE_FIGURES = ("divergence_depth", "dynamics_heatmap", "jsd_steps", "score_correlation")


def _models(comparison: xr.Dataset) -> xr.Dataset:
    """The model members, in training order when every one has a step, else as given."""
    models = comparison.sel(member=comparison["kind"] == MODEL)
    if np.isfinite(models["step"].values).all():
        models = models.isel(member=np.argsort(models["step"].values, kind="stable"))
    return models


def _untrained(comparison: xr.Dataset) -> xr.Dataset | None:
    untrained = comparison.sel(member=comparison["kind"] == UNTRAINED)
    return untrained if untrained.sizes["member"] else None


def _member_label(member: xr.Dataset) -> str:
    step = float(member["step"])
    return f"{member['member'].item()} (step {step:g})" if np.isfinite(step) else str(member["member"].item())


def _floor_band(ax, untrained: xr.Dataset | None, name: str) -> None:
    if untrained is None:
        return
    values = untrained[name]
    depth = values["relative_depth"].values
    ok = np.isfinite(values.values).any(axis=0)
    n = untrained.sizes["member"]
    ax.fill_between(depth[ok], values.min("member").values[ok], values.max("member").values[ok], color="0.85",
                    label=f"untrained, {n} seed{'s' if n > 1 else ''} (min-max)")


def plot_divergence_depth(comparison: xr.Dataset, out: str | os.PathLike) -> list[str]:
    """Mean D (left) and mean JSD (right) from the reference over the non-reference languages against
    relative depth, one line per model, the untrained band behind; each model's mean H / ln E in the legend."""
    fig = new_figure(10.0, 3.8)
    axes = fig.subplots(1, 2)
    models = _models(comparison)
    cmap = colormaps["viridis"]
    for ax, name, label in ((axes[0], "divergence_mean", "divergence D from the reference,\nmean over languages"),
                            (axes[1], "jsd_mean", "JSD from the reference (nats),\nmean over languages")):
        _floor_band(ax, _untrained(comparison), name)
        for i, member in enumerate(models["member"].values):
            row = models.sel(member=member)
            ok = np.isfinite(row[name].values)
            ax.plot(row["relative_depth"].values[ok], row[name].values[ok], marker="o", ms=3, lw=1.5,
                    color=cmap(i / max(models.sizes["member"] - 1, 1)),
                    label=f"{_member_label(row)}, H/ln E {float(row['entropy_normalised_overall']):.2f}")
        ax.set_xlabel("relative depth (first MoE layer 0, last 1)", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6)
    notes = [text for flag, text in (("divergence_comparable", "routing entropies differ: D levels not comparable"),
                                      ("jsd_comparable", "experts or top-k differ: JSD levels not comparable"))
             if not comparison.attrs.get(flag, 1)]
    fig.suptitle(f"Routing divergence from {comparison.attrs.get('reference_language', 'the reference')} over depth "
                 f"(Bandarkar et al.){' (' + '; '.join(notes) + ')' if notes else ''}", fontsize=9)
    return save(fig, out)


def _heat_rows(comparison: xr.Dataset, name: str) -> tuple[np.ndarray, list[str]]:
    """Rows of a step x depth heat map: the untrained mean (when any) then each model member."""
    models = _models(comparison)
    rows, labels = [], []
    untrained = _untrained(comparison)
    if untrained is not None:
        rows.append(untrained[name].mean("member").values)
        labels.append(f"untrained (mean of {untrained.sizes['member']})")
    for member in models["member"].values:
        rows.append(models[name].sel(member=member).values)
        labels.append(_member_label(models.sel(member=member)))
    return np.array(rows), labels


def plot_dynamics_heatmap(comparison: xr.Dataset, out: str | os.PathLike) -> list[str]:
    """Specialisation, experts exclusive to a language and shared experts per layer (columns) and
    member (rows, training order): counts when every member has the same number of experts, else
    shares of the layer's experts."""
    counts = bool(comparison.attrs.get("counts_comparable", 0))
    panels = [("specialisation", "specialisation I(language; expert) / H(language)")]
    if counts:
        panels += [("exclusive_experts", "experts exclusive to a language"), ("shared_experts", "shared experts")]
    else:
        panels += [("exclusive_share", "share of experts exclusive to a language"),
                   ("shared_experts_share", "share of experts shared")]
    depth = comparison["relative_depth"].values
    first_rows, labels = _heat_rows(comparison, panels[0][0])
    fig = new_figure(3.4 * len(panels) + 1.5, 0.45 * len(labels) + 1.6)
    axes = fig.subplots(1, len(panels), sharey=True)
    for ax, (name, title) in zip(np.atleast_1d(axes), panels):
        rows, _ = _heat_rows(comparison, name)
        image = ax.imshow(np.ma.masked_invalid(rows), aspect="auto", cmap="magma", interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.8)
        if rows.size <= 120:
            for (r, c), value in np.ndenumerate(rows):
                if np.isfinite(value):
                    ax.text(c, r, f"{value:.2f}" if name == "specialisation" or not counts else f"{value:.0f}",
                            ha="center", va="center", fontsize=6, color="w" if value < np.nanmax(rows) * 0.6 else "k")
        step = max(1, len(depth) // 8)
        ax.set_xticks(range(0, len(depth), step), [f"{d:.2f}" for d in depth[::step]], fontsize=7)
        ax.set_xlabel("relative depth", fontsize=8)
        ax.set_title(title, fontsize=8)
    np.atleast_1d(axes)[0].set_yticks(range(len(labels)), labels, fontsize=7)
    fig.suptitle("Language specialisation and experts per layer across checkpoints (Khandelwal et al.; "
                 "exclusive/shared as Chen et al.)", fontsize=9)
    return save(fig, out)


def _step_axis(models: xr.Dataset) -> tuple[np.ndarray, list[str] | None]:
    steps = models["step"].values
    if np.isfinite(steps).all():
        return steps, None
    return np.arange(1, models.sizes["member"] + 1, dtype=float), [str(m) for m in models["member"].values]


def plot_jsd_steps(comparison: xr.Dataset, out: str | os.PathLike) -> list[str]:
    """Mean JSD between languages of different scripts and of the same script, per MoE layer, across
    training (x = step, or the members' order when a step is unknown): revisions joined by a line from
    the untrained models at 0 (squares, min-max bars), a run's own model a star of its own (a rerun
    or the released model beside its checkpoints)."""
    models, untrained = _models(comparison), _untrained(comparison)
    x, names = _step_axis(models)
    revision = np.array([str(r) != "" for r in models["revision"].values])
    panels = [(n, t) for n, t in (("jsd_cross_script", "pairs of different scripts"),
                                  ("jsd_same_script", "pairs of the same script"),
                                  ("jsd_between", "all pairs of languages"))
              if np.isfinite(comparison[n].values).any()][:2]
    fig = new_figure(4.6 * len(panels), 3.6)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    depth = comparison["relative_depth"].values
    cmap = colormaps["viridis"]
    for ax, (name, title) in zip(axes, panels):
        for d, rd in enumerate(depth):
            colour = cmap(rd)
            ys = models[name].isel(relative_depth=d).values
            xs, line = x[revision], ys[revision]
            if untrained is not None:
                floor = untrained[name].isel(relative_depth=d).values
                if np.isfinite(floor).any():
                    mean = float(np.nanmean(floor))
                    ax.errorbar([0.0], [mean], yerr=[[mean - np.nanmin(floor)], [np.nanmax(floor) - mean]], color=colour,
                                fmt="s", ms=3, capsize=2)
                    xs, line = np.concatenate([[0.0], xs]), np.concatenate([[mean], line])
            ok = np.isfinite(line)
            if ok.any():
                ax.plot(xs[ok], line[ok], marker="o", ms=3, lw=1.2, color=colour, label=f"depth {rd:.2f}")
            own = ~revision & np.isfinite(ys)
            ax.plot(x[own], ys[own], ls="none", marker="*", ms=7, color=colour,
                    label=None if ok.any() else f"depth {rd:.2f}")
        ax.set_title(f"JSD between languages, {title}", fontsize=8)
        ax.set_xlabel("training step (0 = untrained, squares: min-max over seeds; stars: a run's own model)"
                      if names is None else "member", fontsize=7)
        if names is not None:
            ax.set_xticks(x, names, fontsize=6, rotation=30)
        ax.set_ylabel("mean JSD (nats)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6, ncol=2)
    note = "" if comparison.attrs.get("jsd_comparable", 1) else " (members differ in experts or top-k: levels not comparable)"
    fig.suptitle(f"Routing JSD between languages across training (Khandelwal et al.){note}", fontsize=9)
    return save(fig, out)


def plot_score_correlation(comparison: xr.Dataset, out: str | os.PathLike) -> list[str]:
    """Pearson r of mean middle-layer D with the per-language score, with its 95% interval, per model."""
    models = _models(comparison)
    corr = models["score_correlation"]
    names = [str(m) for m in models["member"].values]
    fig = new_figure(5.5, 0.4 * len(names) + 1.6)
    ax = fig.subplots()
    for i, name in enumerate(names):
        r, lo, hi, n = (float(corr.sel(member=name, statistic=s)) for s in ("pearson_r", "pearson_lo", "pearson_hi", "n"))
        if np.isfinite(r):
            err = [[r - lo], [hi - r]] if np.isfinite(lo) else None
            ax.errorbar([r], [i], xerr=err, fmt="o", color="C0", capsize=3)
            ax.text(1.02, i, f"n={n:.0f}", va="center", fontsize=7, transform=ax.get_yaxis_transform())
        else:
            ax.text(0.0, i, "no scores" if n == 0 else f"undefined (n={n:.0f})", va="center", ha="center",
                    fontsize=7, color="0.4")
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.set_xlim(-1.05, 1.05)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_ylim(len(names) - 0.4, -0.6)  # the first member on top
    ax.set_xlabel("Pearson r (95% interval, Fisher z): middle-layer D vs score", fontsize=8)
    ax.set_title("Divergence-performance correlation per model (Bandarkar et al.)", fontsize=9)
    return save(fig, out)


_PLOTS = {"divergence_depth": plot_divergence_depth, "dynamics_heatmap": plot_dynamics_heatmap,
          "jsd_steps": plot_jsd_steps, "score_correlation": plot_score_correlation}


def plot_comparison(comparison: xr.Dataset, outputs: dict[str, str | os.PathLike]) -> list[str]:
    """Draw each figure of `outputs` (name in COMPARE_FIGURES -> PNG path); return the paths written."""
    unknown = sorted(set(outputs) - set(_PLOTS))
    if unknown:
        raise ValueError(f"unknown comparison figure(s) {unknown} (known: {', '.join(COMPARE_FIGURES)})")
    return [path for name, out in outputs.items() for path in _PLOTS[name](comparison, out)]
