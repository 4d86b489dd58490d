"""Figures: every function writes non-empty PNG and SVG, on a small and on a 100 x 48 x 128 store."""

import numpy as np
import pytest
from matplotlib.image import imread

from polyroute.plots import (
    expert_class_counts,
    plot_activation,
    plot_all,
    plot_by_depth,
    plot_expert_classes,
    plot_isolation,
    plot_rise_maps,
    plot_similarity,
    plot_vocabulary,
)
from polyroute.plots.heatmaps import cluster_order
from polyroute.stats import compute_stats
from polyroute.stats.synthetic import synthetic_store

REF = "l000_Synt"


def check_image(paths):
    png, svg = paths
    img = imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert img[..., :3].std() > 0.05  # not a blank canvas
    text = open(svg).read()
    assert text.lstrip().startswith("<?xml") and "</svg>" in text


@pytest.fixture(scope="module")
def small():
    ds = synthetic_store(6, 8, 16, 2, 6, seed=3)
    return compute_stats(ds, reference=REF, scores={g: float(i) for i, g in enumerate(ds["language"].values)})


@pytest.mark.slow
def test_plot_all_small(tmp_path, small):
    written = plot_all(small, tmp_path, high_resource=[REF, "l001_Synt"])
    assert set(written) == {"divergence", "divergence_parallel", "entropy", "consistency", "similarity",
                            "activation", "rise_maps", "expert_classes", "isolation", "vocabulary"}
    for paths in written.values():
        check_image(paths)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_figure_options_and_errors(tmp_path, small):
    check_image(plot_similarity(small, tmp_path / "sim", layers=[1, 6]))
    check_image(plot_activation(small, tmp_path / "act", languages=["l002_Synt"]))
    with pytest.raises(ValueError, match="not MoE layers"):
        plot_similarity(small, tmp_path / "x", layers=[99])
    with pytest.raises(ValueError, match="RISE map target"):
        plot_rise_maps(small, tmp_path / "x", target="nope")
    with pytest.raises(ValueError, match="high_resource"):
        plot_isolation(small, tmp_path / "x", high_resource=["nope"])
    with pytest.raises(ValueError, match="lacks"):
        plot_by_depth(small.drop_vars("divergence"), tmp_path / "x")


@pytest.mark.slow
def test_skips_figures_without_per_token_data(tmp_path):
    ds = synthetic_store(4, 6, 8, 2, 3, per_token=False, seed=1)
    st = compute_stats(ds, reference=REF)
    written = plot_all(st, tmp_path)
    assert "consistency" not in written and "vocabulary" not in written and "isolation" not in written
    with pytest.raises(ValueError, match="all NaN"):
        plot_by_depth(st, tmp_path / "c", variable="consistency")
    with pytest.raises(ValueError, match="all NaN"):
        plot_vocabulary(st, tmp_path / "v")


def test_expert_class_counts_partition(small):
    c = expert_class_counts(small["expert_class"])
    total = c["exclusive"] + c["shared"] + c["unused"]
    assert (total == small.sizes["expert"]).all()


def test_cluster_order_groups_blocks():
    sim = np.full((4, 4), 0.1)
    sim[np.ix_([0, 2], [0, 2])] = 0.9
    sim[np.ix_([1, 3], [1, 3])] = 0.9
    order = list(cluster_order(sim))
    assert abs(order.index(0) - order.index(2)) == 1 and abs(order.index(1) - order.index(3)) == 1


@pytest.mark.slow
def test_figures_at_full_scale(tmp_path):
    ds = synthetic_store(100, 48, 128, 8, 3, tokens_per_seq=(3, 5), seed=5)
    langs = ds["language"].values
    st = compute_stats(ds, reference=REF, scores={g: float(i % 9) for i, g in enumerate(langs)})
    check_image(plot_by_depth(st, tmp_path / "divergence"))
    check_image(plot_similarity(st, tmp_path / "similarity"))
    check_image(plot_rise_maps(st, tmp_path / "rise", target="l050_Synt"))
    check_image(plot_expert_classes(st, tmp_path / "classes"))
    check_image(plot_isolation(st, tmp_path / "isolation", high_resource=list(langs[:5])))
    check_image(plot_activation(st, tmp_path / "activation"))
    check_image(plot_vocabulary(st, tmp_path / "vocabulary"))


def test_end_labels_stay_inside_the_data_range_and_apart():
    from polyroute.plots._common import spread_labels

    ys = np.array([0.80, 0.81, 0.815, 0.82, 0.82, 0.79, 0.78, 0.822, 0.818, 0.81])  # clustered at the top
    placed = spread_labels(ys, 0.35, 0.822)
    assert placed.min() >= 0.35 and placed.max() <= 0.822 + 1e-12
    assert (np.diff(placed) >= (0.822 - 0.35) * 0.045 - 1e-12).all()
    # too many labels for the default gap: they still fit, evenly
    many = spread_labels(np.full(50, 1.0), 0.0, 1.0)
    assert many.min() >= -1e-12 and many.max() <= 1.0 and (np.diff(many) > 0).all()


def test_loss_figure_is_a_png_of_the_log(tmp_path):
    from polyroute.plots import plot_loss

    rows = [{"step": s, "loss": 8.0 - 0.1 * s} for s in range(1, 6)]
    plot_loss(rows, tmp_path / "loss.png", "rise -> swh_Latn")
    image = imread(tmp_path / "loss.png")
    assert image.shape[:2] == (385, 660)  # 6 x 3.5 inches at 110 dpi
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]  # written atomically, nothing left over


def test_intervention_figures(tmp_path):
    import pandas as pd

    from polyroute.evaluate.sweep import sweep_means
    from polyroute.plots.interventions import plot_masking, plot_routing_shift, plot_sweep

    rng = np.random.default_rng(0)
    rows = []
    for kind, experiment, strengths in (("steer", "en-shared", (0.01, 0.022, 0.03)), ("mask", "swh-early", (None,)),
                                        ("mask", "swh-late", (None,))):
        for strength in strengths:
            for g in ("eng_Latn", "fra_Latn", "swh_Latn"):
                change = rng.normal(-(strength or 0.02) * 5, 0.02)
                rows.append({"kind": kind, "experiment": experiment, "strength": strength, "task": "belebele",
                             "metric": "acc", "language": g, "change": change, "change_ci_low": change - 0.05,
                             "change_ci_high": change + 0.05})
    changes = pd.DataFrame(rows)
    check_image(plot_sweep(changes, sweep_means(changes), {("en-shared", "belebele"): 0.022}, tmp_path / "sweep"))
    check_image(plot_masking(changes, tmp_path / "masking", labels={"swh-early": "swh-early (early: layers [0])"},
                             masked={"swh-early": "swh_Latn"}))
    shift = pd.DataFrame([{"intervention": name, "language": g, "layer": layer, "jsd": rng.uniform(0, 0.1),
                           "edited_share_base": 0.2 if layer == 1 else np.nan,
                           "edited_share_shifted": 0.0 if layer == 1 else np.nan}
                          for name in ("swh-early", "en-shared") for g in ("eng_Latn", "swh_Latn") for layer in range(4)])
    check_image(plot_routing_shift(shift, tmp_path / "shift"))
    # nothing to draw: the figure says so instead of failing
    assert imread(plot_sweep(changes.iloc[:0], sweep_means(changes.iloc[:0]), {}, tmp_path / "none")[0]).size > 0
