"""METHODS sections 2-3 formulas against hand-computed values, scipy and slow reference loops."""

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy as sp_entropy

from polyroute.stats import (
    divergence_from_reference,
    entropy,
    frequency,
    hard_distribution,
    jsd,
    similarity,
    soft_distribution,
    specialisation,
    top_expert_overlap,
)
from polyroute.stats._core import jsd_nats
from polyroute.stats.correlation import pair_correlation
from polyroute.stats.zones import depth_zones

LN2 = np.log(2.0)


def lle(values, langs=None):
    values = np.asarray(values, dtype=float)
    g, l, e = values.shape
    return xr.DataArray(
        values,
        dims=("language", "layer", "expert"),
        coords={"language": langs or [f"g{i}" for i in range(g)], "layer": np.arange(l), "expert": np.arange(e)},
    )


def test_frequency_and_distributions_by_hand():
    count = lle([[[2, 1, 1]]])
    tokens = xr.DataArray([2], dims="language", coords={"language": ["g0"]})
    np.testing.assert_allclose(frequency(count, tokens).values.ravel(), [1.0, 0.5, 0.5])  # row sums to k=2
    np.testing.assert_allclose(hard_distribution(count, tokens, 2).values.ravel(), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(soft_distribution(lle([[[1.2, 0.6, 0.2]]]), tokens).values.ravel(), [0.6, 0.3, 0.1])


def test_used_weight_distribution_by_hand():
    # Bandarkar's input: per sequence, the routing weights the model applied, summed and normalised.
    # Sequence a, top-2 renormalised: token 1 (e0 .75, e1 .25), token 2 (e0 .5, e2 .5):
    #   sum [1.25, .25, .5, 0] / 2 = [.625, .125, .25, 0]; its hard distribution is [2, 1, 1, 0] / 4.
    # Sequence b, weights not renormalised (OLMoE): one token (e0 .3, e1 .1): [.3, .1, 0, 0] / .4.
    from polyroute.stats.distributions import sequence_distribution, used_distribution

    block = np.array([[[1.25, 0.25, 0.5, 0.0]], [[0.3, 0.1, 0.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]], dtype=np.float32)
    got = sequence_distribution(block, np.array([2, 1, 0]), 2, "used")
    np.testing.assert_allclose(got[0, 0], [0.625, 0.125, 0.25, 0.0], rtol=1e-6)
    np.testing.assert_allclose(got[1, 0], [0.75, 0.25, 0.0, 0.0], rtol=1e-6)
    assert np.isnan(got[2]).all()  # a sequence without tokens is skipped by callers
    np.testing.assert_allclose(sequence_distribution(np.array([[[2.0, 1, 1, 0]]]), np.array([2]), 2, "hard")[0, 0],
                               [0.5, 0.25, 0.25, 0.0])
    pooled = used_distribution(lle([[[1.25, 0.25, 0.5, 0.0]], [[0.3, 0.1, 0.0, 0.0]]]))
    np.testing.assert_allclose(pooled.values[:, 0], [[0.625, 0.125, 0.25, 0.0], [0.75, 0.25, 0.0, 0.0]])
    # D between the two: JSD / (ln 4 - (H_a + H_b) / 2), with scipy as the independent route
    d = divergence_from_reference(pooled.assign_coords(language=["ref", "b"]), "ref")["divergence"].sel(language="b")
    u_a, u_b = np.array([0.625, 0.125, 0.25, 0.0]), np.array([0.75, 0.25, 0.0, 0.0])
    want = jensenshannon(u_a, u_b, base=np.e) ** 2 / (np.log(4) - (sp_entropy(u_a) + sp_entropy(u_b)) / 2)
    assert d.item() == pytest.approx(want, rel=1e-9)


def test_entropy_by_hand_and_bases():
    p = lle([[[0.5, 0.5, 0.0, 0.0]]])
    assert entropy(p).item() == pytest.approx(LN2)
    assert entropy(p, log_base=2).item() == pytest.approx(1.0)
    assert entropy(p, log_base="e").item() == pytest.approx(LN2)
    assert entropy(p, normalise=True).item() == pytest.approx(0.5)  # ln 2 / ln 4
    assert entropy(p, log_base=2).attrs["log_base"] == 2.0


def test_entropy_matches_scipy():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(7), size=(3, 4))
    p[0, 0, :3] = 0
    p[0, 0] /= p[0, 0].sum()
    got = entropy(lle(p), log_base=2).values
    np.testing.assert_allclose(got, sp_entropy(p, base=2, axis=-1), rtol=1e-12)


@pytest.mark.parametrize("log_base", [0, 1, -2, "ten", float("nan")])
def test_bad_log_base(log_base):
    with pytest.raises(ValueError, match="log_base"):
        entropy(lle([[[1.0]]]), log_base=log_base)


def test_jsd_by_hand():
    assert jsd_nats(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(LN2)
    # M = (.75, .25): H(M) - (ln 2 + 0) / 2
    expected = -(0.75 * np.log(0.75) + 0.25 * np.log(0.25)) - LN2 / 2
    assert jsd_nats(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(expected)
    assert expected == pytest.approx(0.2157615543)


def test_jsd_properties_and_scipy():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.full(9, 0.3), size=200)
    q = rng.dirichlet(np.full(9, 0.3), size=200)
    pq = jsd_nats(p, q)
    ref = np.array([jensenshannon(a, b, base=np.e) ** 2 for a, b in zip(p, q)])
    np.testing.assert_allclose(pq, ref, atol=1e-12)
    np.testing.assert_allclose(pq, jsd_nats(q, p), atol=1e-15)  # symmetric
    np.testing.assert_allclose(jsd_nats(p, p), 0.0, atol=1e-15)  # 0 on identical
    assert (pq >= 0).all() and (pq <= LN2).all()
    da = jsd(lle(p[None]), lle(q[None]))
    assert da.dims == ("language", "layer") and da.attrs["units"] == "nats"


def test_similarity_against_slow_loop():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.full(6, 0.5), size=(5, 3))
    p[1] = p[0]  # an identical pair
    sim = similarity(lle(p))
    assert sim.dims == ("language", "language_b", "layer")
    for g in range(5):
        for h in range(5):
            for l in range(3):
                expected = 1 - jensenshannon(p[g, l], p[h, l], base=np.e) ** 2 / LN2
                assert sim.values[g, h, l] == pytest.approx(expected, abs=1e-12)
    assert np.allclose(sim.values, sim.values.transpose(1, 0, 2))
    assert (sim.values >= 0).all() and (sim.values <= 1).all()
    np.testing.assert_allclose(sim.values[0, 1], 1.0)


def test_similarity_disjoint_is_zero():
    sim = similarity(lle([[[1.0, 0.0]], [[0.0, 1.0]]]))
    assert sim.values[0, 1, 0] == pytest.approx(0.0, abs=1e-15)


def test_divergence_by_hand():
    # E = 4: identical -> 0; disjoint halves: JSD = ln 2, denominator ln 4 - ln 2 = ln 2 -> D = 1
    p = lle([[[0.5, 0.5, 0, 0]], [[0.5, 0.5, 0, 0]], [[0, 0, 0.5, 0.5]]], ["eng", "fra", "zho"])
    out = divergence_from_reference(p, "eng")
    np.testing.assert_allclose(out["divergence"].values.ravel(), [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(out["jsd"].values.ravel(), [0.0, 0.0, LN2], atol=1e-12)
    assert out["divergence"].attrs["reference"] == "eng"


def test_divergence_against_formula_loop():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.full(8, 0.4), size=(4, 3))
    out = divergence_from_reference(lle(p), "g2")["divergence"].values
    for g in range(4):
        for l in range(3):
            j = jensenshannon(p[2, l], p[g, l], base=np.e) ** 2
            denom = np.log(8) - (sp_entropy(p[2, l]) + sp_entropy(p[g, l])) / 2
            assert out[g, l] == pytest.approx(j / denom, abs=1e-12)


def test_divergence_unknown_reference():
    with pytest.raises(ValueError, match="reference language 'xx'"):
        divergence_from_reference(lle([[[1.0]]]), "xx")


def test_specialisation_extremes_and_loop():
    disjoint = lle([[[4, 0]], [[0, 4]]])
    same = lle([[[2, 2]], [[3, 3]]])
    assert specialisation(disjoint).item() == pytest.approx(1.0)
    assert specialisation(same).item() == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(5)
    count = rng.integers(0, 20, size=(3, 2, 5)).astype(float)
    got = specialisation(lle(count)).values
    for l in range(2):
        joint = count[:, l] / count[:, l].sum()
        pg, pi = joint.sum(1), joint.sum(0)
        mi = sum(joint[g, i] * np.log(joint[g, i] / (pg[g] * pi[i])) for g in range(3) for i in range(5) if joint[g, i] > 0)
        assert got[l] == pytest.approx(mi / sp_entropy(pg))


def test_top_expert_overlap_by_hand():
    freq = lle([[[0.9, 0.8, 0.1, 0.0]], [[0.9, 0.0, 0.2, 0.7]]])
    ov = top_expert_overlap(freq, 2)
    assert ov.values[0, 1, 0] == pytest.approx(0.5)  # {0,1} vs {0,3}
    assert ov.values[0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="top_n"):
        top_expert_overlap(freq, 5)


def test_depth_zones_rise_rule():
    z = depth_zones(48)
    assert (z["shallow"], z["middle"], z["deep"]) == (range(0, 18), range(18, 30), range(30, 48))
    z = depth_zones(16)
    assert (z["shallow"].stop, z["middle"].stop) == (6, 10)


def test_pair_correlation_matches_scipy_and_drops_nan():
    from scipy import stats as sps

    x = np.array([1.0, 2, 3, 4, 5, np.nan])
    y = np.array([2.0, 1, 4, 3, 6, 1])
    c = pair_correlation(x, y)
    assert c["n"] == 5
    assert c["pearson_r"] == pytest.approx(sps.pearsonr(x[:5], y[:5]).statistic)
    assert c["spearman_rho"] == pytest.approx(0.8)  # ranks 2,1,4,3,5 vs 1..5: 1 - 6*4/120
    assert np.isnan(pair_correlation([1, 1, 1], [1, 2, 3])["pearson_r"])
