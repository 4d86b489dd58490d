"""METHODS section 4 scores: worked examples by hand, a slow reference loop, invariants, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from polyroute.stats import experts as ex

LANGS = ["a", "b", "c"]


def lle(values, languages=LANGS, layers=None) -> xr.DataArray:
    values = np.asarray(values)
    layers = list(range(values.shape[1])) if layers is None else layers
    return xr.DataArray(
        values,
        dims=ex.DIMS,
        coords={"language": languages, "layer": layers, "expert": np.arange(values.shape[2])},
    )


def tok(values, languages=LANGS) -> xr.DataArray:
    return xr.DataArray(np.asarray(values), dims="language", coords={"language": languages})


# Worked example: 3 languages, one MoE layer (model index 3), 4 experts, top-2, 4 tokens each.
COUNT = lle([[[4, 0, 2, 2]], [[2, 2, 2, 2]], [[0, 4, 4, 0]]], layers=[3])
TOKENS = tok([4, 4, 4])
FREQ = COUNT / TOKENS  # a: [1, 0, .5, .5], b: [.5, .5, .5, .5], c: [0, 1, 1, 0]


def test_specificity_worked_example():
    # abar = [.5, .5, 2/3, 1/3]; S_a = a_a / abar = [2, 0, .75, 1.5]
    s = ex.specificity(FREQ, "a")
    assert s.dims == ("layer", "expert")
    np.testing.assert_allclose(s.sel(layer=3).values, [2.0, 0.0, 0.75, 1.5])
    np.testing.assert_allclose(ex.specificity(FREQ, "c").sel(layer=3).values, [0.0, 2.0, 1.5, 0.0])


def test_overlap_worked_example():
    # expert 0: values [1, .5, 0], mean .5, population std sqrt(1/6), CV = sqrt(2/3)
    # expert 2: values [.5, .5, 1], mean 2/3, std sqrt(2)/6, CV = sqrt(2)/4
    # expert 3: values [.5, .5, 0], mean 1/3, std sqrt(2)/6, CV = sqrt(2)/2
    o = ex.overlap(FREQ).sel(layer=3).values
    expected = [1 / (1 + math.sqrt(2 / 3)), 1 / (1 + math.sqrt(2 / 3)), 1 / (1 + math.sqrt(2) / 4), 1 / (1 + math.sqrt(2) / 2)]
    np.testing.assert_allclose(o, expected)


def test_overlap_all_zero_and_uniform():
    freq = lle([[[0.0, 1.0, 0.3]], [[0.0, 1.0, 0.0]], [[0.0, 1.0, 0.0]]])
    o = ex.overlap(freq).values[0]
    assert o[0] == 0.0  # nobody uses it: shared by nobody
    assert o[1] == 1.0  # every language uses it equally
    assert 0.0 < o[2] < 1.0
    assert np.isfinite(ex.specificity(freq, "a").values).all()
    assert ex.specificity(freq, "a").values[0, 0] == 0.0


def test_rise_scores_worked_example():
    # spec = S_a (1 + 10 a_a) = [2*11, 0, .75*6, 1.5*6]; ovlp = O (1 + 10 abar)
    ds = ex.rise_scores(FREQ, "a", alpha=10.0)
    np.testing.assert_allclose(ds["spec"].sel(layer=3).values, [22.0, 0.0, 4.5, 9.0])
    o = ex.overlap(FREQ).sel(layer=3).values
    np.testing.assert_allclose(ds["ovlp"].sel(layer=3).values, o * (1 + 10 * np.array([0.5, 0.5, 2 / 3, 1 / 3])))
    plain = ex.rise_scores(FREQ, "a", alpha=0.0)
    np.testing.assert_allclose(plain["spec"].values, ex.specificity(FREQ, "a").values)


def test_affinity_worked_example_with_ties():
    # top_m = 2: a keeps 1 and the two tied .5 (ties at the 2nd place are all kept); b keeps all four
    # (all tied); c keeps its two. Column sums of f~: [1.5, 1.5, 2, 1].
    w = ex.affinity(COUNT, TOKENS, top_m=2).sel(layer=3)
    np.testing.assert_allclose(w.sel(language="a").values, [2 / 3, 0, 0.25, 0.5])
    np.testing.assert_allclose(w.sel(language="b").values, [1 / 3, 1 / 3, 0.25, 0.5])
    np.testing.assert_allclose(w.sel(language="c").values, [0, 2 / 3, 0.5, 0])
    # top_m = 1: a keeps expert 0, b all four (tied), c experts 1 and 2 (tied)
    w1 = ex.affinity(COUNT, TOKENS, top_m=1).sel(layer=3)
    np.testing.assert_allclose(w1.sel(language="a").values, [2 / 3, 0, 0, 0])
    np.testing.assert_allclose(w1.sel(language="b").values, [1 / 3, 1 / 3, 1 / 3, 1])


def test_expert_classes_worked_example():
    w = ex.affinity(COUNT, TOKENS, top_m=2)
    cls = ex.expert_classes(w, theta=0.4).sel(layer=3)
    assert cls.dtype == np.int8
    # expert 0: a .67 excl; expert 1: c .67 excl; expert 2: c .5 excl; expert 3: a and b .5 both excl
    np.testing.assert_array_equal(cls.sel(language="a").values, [2, 0, 0, 2])
    np.testing.assert_array_equal(cls.sel(language="b").values, [0, 0, 0, 2])
    np.testing.assert_array_equal(cls.sel(language="c").values, [0, 2, 2, 0])
    # with theta .7 nothing is exclusive: every expert a language uses is shared for it
    cls7 = ex.expert_classes(w, theta=0.7).sel(layer=3)
    np.testing.assert_array_equal(cls7.values, (w.sel(layer=3).values > 0).astype(np.int8))


def test_language_experts_by_gap_worked_example():
    # Khandelwal's code: each language's counts normalised over the layer's experts. Language a has 10x
    # the tokens of b and c (top-1, so rows sum to the tokens):
    #   a [40, 30, 20, 10] -> [.4, .3, .2, .1]; b [2, 3, 4, 1] -> [.2, .3, .4, .1]; c [1, 3, 5, 1] -> [.1, .3, .5, .1]
    # e0: a .4 - b .2 = .2 -> a; e1: all .3, a tie -> nobody; e2: c .5 - b .4 = .1 -> c; e3: tie -> nobody.
    # (Shares of each expert's total over languages, polyroute's earlier rule, gave all four to a:
    # 40/43, 30/36, 20/29, 10/12.)
    count = lle([[[40, 30, 20, 10]], [[2, 3, 4, 1]], [[1, 3, 5, 1]]])
    le = ex.language_experts_by_gap(count, gap=0.01).values[:, 0]
    np.testing.assert_array_equal(le, [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]])
    # gap .15: e2's .1 no longer counts
    le15 = ex.language_experts_by_gap(count, gap=0.15).values[:, 0]
    np.testing.assert_array_equal(le15, [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    # comparing b and c only (their high-resource set): e0 b .2 - c .1 -> b; e2 -> c
    bc = ex.language_experts_by_gap(count, gap=0.01, languages=["b", "c"])
    assert list(bc["language"].values) == ["b", "c"]
    np.testing.assert_array_equal(bc.values[:, 0], [[1, 0, 0, 0], [0, 0, 1, 0]])
    # the boundary is inclusive: a gap of exactly .25 assigns (.625 - .375, exact in binary)
    exact = lle([[[5, 3]], [[3, 5]], [[0, 0]]], layers=[0])
    np.testing.assert_array_equal(ex.language_experts_by_gap(exact, gap=0.25).values[:, 0, :],
                                  [[1, 0], [0, 1], [0, 0]])
    with pytest.raises(ValueError, match="languages"):
        ex.language_experts_by_gap(count, languages=["a", "zz"])


def test_shared_experts_worked_example():
    # mean over a and b: [.75, .25, .5, .5]; top 2 with ties to the lower index: e0, then e2 (tied with e3)
    sh = ex.shared_experts(FREQ, ["a", "b"], s=2).sel(layer=3).values
    np.testing.assert_array_equal(sh, [True, False, True, False])
    # s larger than the used experts: only positive means qualify
    sh_c = ex.shared_experts(FREQ, ["c"], s=4).sel(layer=3).values
    np.testing.assert_array_equal(sh_c, [False, True, True, False])


def test_esft_worked_example():
    # gate shares of a over its layer: [.5, .1, .25, .15]; top_p .2 -> e0 alone (.5 >= .2);
    # top_p .6 -> e0 + e2 (.75); top_p .75 -> e0 + e2 exactly reach it; top_p .8 -> + e3
    gate = lle([[[2.0, 0.4, 1.0, 0.6]], [[1, 1, 1, 1]], [[1, 1, 1, 1]]])
    def pick(p, score="gate"):
        return ex.esft_gate_selection(gate, COUNT, TOKENS, "a", top_p=p, score=score).values[0]
    np.testing.assert_array_equal(pick(0.2), [1, 0, 0, 0])
    np.testing.assert_array_equal(pick(0.6), [1, 0, 1, 0])
    np.testing.assert_array_equal(pick(0.75), [1, 0, 1, 0])
    np.testing.assert_array_equal(pick(0.8), [1, 0, 1, 1])
    np.testing.assert_array_equal(pick(1.0), [1, 1, 1, 1])
    # token score of a: count shares [.5, 0, .25, .25]; top_p .6 -> e0 + e2 (tie with e3: lower index)
    np.testing.assert_array_equal(pick(0.6, "token"), [1, 0, 1, 0])


def test_chen_shared_source_experts():
    w = ex.affinity(COUNT, TOKENS, top_m=2)  # a: [.67, 0, .25, .5]
    np.testing.assert_array_equal(ex.chen_shared_source_experts(w, "a").values[0], [True, False, False, True])
    np.testing.assert_array_equal(
        ex.chen_shared_source_experts(w, "a", low=0.2, high=0.6).values[0], [False, False, True, True]
    )


# ---------------------------------------------------------------- slow reference loops


def random_counts(seed: int, G: int = 5, L: int = 3, E: int = 10, k: int = 2):
    rng = np.random.default_rng(seed)
    T = rng.integers(5, 40, size=G)
    count = np.zeros((G, L, E), dtype=np.int64)
    for g in range(G):  # real top-k routing: each token picks k distinct experts, some experts unpopular
        p = rng.dirichlet(np.full(E, 0.3))
        for l in range(L):
            for _ in range(T[g]):
                count[g, l, rng.choice(E, size=k, replace=False, p=p)] += 1
    langs = [f"l{g}" for g in range(G)]
    return lle(count, langs), tok(T, langs)


def ref_scores(count, tokens, target, alpha, m, theta):
    G, L, E = count.shape
    a = count / tokens[:, None, None]
    S, O, Sp, Ov = (np.zeros((L, E)) for _ in range(4))
    W = np.zeros((G, L, E))
    for l in range(L):
        for i in range(E):
            col = [a[g, l, i] for g in range(G)]
            mean = sum(col) / G
            std = math.sqrt(sum((x - mean) ** 2 for x in col) / G)
            S[l, i] = a[target, l, i] / mean if mean > 0 else 0.0
            O[l, i] = 1 / (1 + std / mean) if mean > 0 else 0.0
            Sp[l, i] = S[l, i] * (1 + alpha * a[target, l, i])
            Ov[l, i] = O[l, i] * (1 + alpha * mean)
    kept = np.zeros_like(a)
    for g in range(G):
        for l in range(L):
            kth = sorted(a[g, l], reverse=True)[m - 1]
            for i in range(E):
                if a[g, l, i] >= kth and a[g, l, i] > 0:
                    kept[g, l, i] = a[g, l, i]
    cls = np.zeros((G, L, E), dtype=int)
    for l in range(L):
        for i in range(E):
            col = sum(kept[:, l, i])
            for g in range(G):
                W[g, l, i] = kept[g, l, i] / col if col > 0 else 0.0
            shared = col > 0 and all(W[g, l, i] <= theta for g in range(G))
            for g in range(G):
                cls[g, l, i] = 2 if W[g, l, i] > theta else (1 if shared and W[g, l, i] > 0 else 0)
    return S, O, Sp, Ov, W, cls


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_reference_loop(seed):
    count, tokens = random_counts(seed)
    freq = count / tokens
    S, O, Sp, Ov, W, cls = ref_scores(count.values, tokens.values, 1, 10.0, 3, 0.4)
    np.testing.assert_allclose(ex.specificity(freq, "l1").values, S, rtol=1e-12)
    np.testing.assert_allclose(ex.overlap(freq).values, O, rtol=1e-12)
    ds = ex.rise_scores(freq, "l1", alpha=10.0)
    np.testing.assert_allclose(ds["spec"].values, Sp, rtol=1e-12)
    np.testing.assert_allclose(ds["ovlp"].values, Ov, rtol=1e-12)
    w = ex.affinity(count, tokens, top_m=3)
    np.testing.assert_allclose(w.values, W, rtol=1e-12)
    np.testing.assert_array_equal(ex.expert_classes(w, theta=0.4).values, cls)


def test_gap_and_shared_match_reference_loop():
    count, tokens = random_counts(7)
    c = count.values
    G, L, E = c.shape
    got = ex.language_experts_by_gap(count, gap=0.05).values
    freq = (count / tokens).values
    got_sh = ex.shared_experts(count / tokens, ["l0", "l2"], s=3).values
    for l in range(L):
        for i in range(E):
            shares = sorted(((c[g, l, i] / c[g, l].sum() if c[g, l].sum() else 0.0), g) for g in range(G))
            (s2, _), (s1, g1) = shares[-2], shares[-1]
            want = np.zeros(G, bool)
            if s1 > s2 and s1 - s2 >= 0.05:
                want[g1] = True
            np.testing.assert_array_equal(got[:, l, i], want)
        mean = (freq[0, l] + freq[2, l]) / 2
        ranked = sorted(range(E), key=lambda i: (-mean[i], i))
        want_sh = np.zeros(E, bool)
        want_sh[[i for i in ranked[:3] if mean[i] > 0]] = True
        np.testing.assert_array_equal(got_sh[l], want_sh)


# ---------------------------------------------------------------- invariants


@pytest.mark.parametrize("seed", [3, 4])
def test_invariants(seed):
    count, tokens = random_counts(seed)
    freq = count / tokens
    # mean over languages of specificity is 1 for every used expert (sum_g a_g / abar = G)
    spec_all = xr.concat([ex.specificity(freq, g) for g in freq["language"].values], "language")
    used = freq.mean("language") > 0
    np.testing.assert_allclose(spec_all.mean("language").where(used, 1.0).values, 1.0)
    o = ex.overlap(freq)
    assert ((o > 0) & (o <= 1) | ~used).all()
    w = ex.affinity(count, tokens)
    col = w.sum("language")
    np.testing.assert_allclose(col.where(col > 0, 1.0).values, 1.0)
    # classes partition the used experts: each used expert is shared or exclusive to someone, never both
    cls = ex.expert_classes(w, theta=0.4)
    used_w = (w > 0).any("language")
    shared = (cls == ex.SHARED).any("language")
    exclusive = (cls == ex.EXCLUSIVE).any("language")
    assert not (shared & exclusive).any()
    assert ((shared | exclusive) == used_w).all()
    # gap rule: at most one language per expert
    assert (ex.language_experts_by_gap(count).sum("language") <= 1).all()
    # ESFT: selected shares reach top_p, and dropping the last selected would not
    gate = count * 0.4
    sel = ex.esft_gate_selection(gate, count, tokens, "l0", top_p=0.3).values
    share = (gate.sel(language="l0") / gate.sel(language="l0").sum("expert")).values
    for l in range(share.shape[0]):
        picked = share[l][sel[l]]
        assert picked.sum() >= 0.3 - 1e-12
        assert picked.sum() - picked.min() < 0.3


def test_dims_order_does_not_matter():
    freq = FREQ.transpose("expert", "language", "layer")
    np.testing.assert_allclose(ex.specificity(freq, "a").values, ex.specificity(FREQ, "a").values)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ex.specificity(FREQ, "zz"), "target"),
        (lambda: ex.specificity(FREQ.isel(layer=0), "a"), "dims"),
        (lambda: ex.overlap(FREQ * -1), "non-negative"),
        (lambda: ex.rise_scores(FREQ, "a", alpha=-1), "alpha"),
        (lambda: ex.affinity(COUNT, TOKENS, top_m=0), "top_m"),
        (lambda: ex.affinity(COUNT, tok([4, 0, 4]), top_m=2), r"\['b'\] have no tokens"),
        (lambda: ex.expert_classes(FREQ, theta=1.0), "theta"),
        (lambda: ex.language_experts_by_gap(COUNT, gap=-0.1), "gap"),
        (lambda: ex.shared_experts(FREQ, ["a", "zz"]), "high_resource"),
        (lambda: ex.shared_experts(FREQ, [], s=2), "high_resource"),
        (lambda: ex.esft_gate_selection(COUNT, COUNT, TOKENS, "a", top_p=0), "top_p"),
        (lambda: ex.esft_gate_selection(COUNT, COUNT, TOKENS, "a", score="x"), "score"),
        (lambda: ex.chen_shared_source_experts(FREQ, "a", low=0.8, high=0.7), "low"),
    ],
)
def test_errors_are_one_line(call, match):
    with pytest.raises(ValueError, match=match) as err:
        call()
    assert "\n" not in str(err.value)


def test_esft_token_score_needs_no_gate_sum():
    got = ex.esft_gate_selection(None, COUNT, TOKENS, "a", top_p=0.6, score="token").values[0]
    np.testing.assert_array_equal(got, [1, 0, 1, 0])
    with pytest.raises(ValueError, match="needs gate_sum"):
        ex.esft_gate_selection(None, COUNT, TOKENS, "a")
