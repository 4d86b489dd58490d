"""Routing interventions on every family, observed at what the experts module receives."""

from __future__ import annotations

import contextlib

import pytest
import torch

from polyroute.interventions import enforce_routing, from_expert_set, intervene
from polyroute.interventions.edits import LayerEdit, finite_std
from polyroute.models import get_adapter, rules
from polyroute.models.tiny import tiny_config, tiny_model, tiny_tokenizer
from polyroute.train import apply_delta, save_delta

torch.set_num_threads(1)

FAMILIES = ["qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "phimoe", "gpt_oss", "deepseek_v2", "deepseek_v3"]


@pytest.fixture(scope="module")
def models():
    return {t: tiny_model(tiny_config(t)) for t in FAMILIES}


@pytest.fixture(scope="module")
def ids():
    return torch.randint(4, 100, (2, 12), generator=torch.Generator().manual_seed(0))


@contextlib.contextmanager
def observe(model, adapter):
    """Per MoE layer: the raw logits of the router's own code on its input, the logits the router returned,
    and the (indices, weights) the experts module was called with."""
    seen = {}
    handles = []
    for layer in adapter.moe_layers:
        router = adapter.router(model, layer)

        def on_router(module, args, output, layer=layer):
            raw = type(module).forward(module, *args)[0]  # the class's forward: no intervention in it
            seen.setdefault(layer, {}).update(raw=raw.detach().float().clone(), returned=output[0].detach().float().clone())

        def on_experts(module, args, kwargs, layer=layer):
            seen.setdefault(layer, {}).update(indices=args[1].clone(), weights=args[2].clone())

        handles.append(router.register_forward_hook(on_router))
        handles.append(adapter.experts(model, layer).register_forward_pre_hook(on_experts, with_kwargs=True))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def run(model, adapter, ids):
    with torch.no_grad(), observe(model, adapter) as seen:
        logits = model(ids).logits
    return logits, seen


def as_sets(indices):
    return [set(row) for row in indices.tolist()]


def expected_routing(adapter, model, layer, edited, forced=None, barred=None):
    E = adapter.num_experts
    pins = {name: None if cols is None else torch.zeros(E, dtype=torch.bool).index_fill(0, torch.tensor(cols), True)
            for name, cols in (("forced", forced), ("barred", barred))}
    return adapter.route(edited, adapter.router(model, layer), **pins)


def same_routing(seen_layer, weights, indices):
    """The experts received exactly these (index, weight) pairs per token, in any order."""
    got_i, got_w = seen_layer["indices"], seen_layer["weights"].float()
    oi, og = indices.argsort(-1), got_i.argsort(-1)
    assert torch.equal(got_i.gather(-1, og), indices.gather(-1, oi))
    torch.testing.assert_close(got_w.gather(-1, og), weights.float().gather(-1, oi), rtol=1e-5, atol=1e-6)


def rarely_chosen(seen_layer, E):
    """An expert that is not in every token's top-k without the intervention (so forcing it is visible)."""
    counts = torch.bincount(seen_layer["indices"].flatten(), minlength=E)
    return int(counts.argmin())


# --- the edits, by hand --------------------------------------------------------------------------------
def test_edits_by_hand():
    z = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 0.0, 4.0, float("-inf")]])
    # sample std of row 0: mean 0.625, squares 0.140625 + 6.890625 + 0.015625 + 5.640625 = 12.6875, / 3
    std0, std1 = (12.6875 / 3) ** 0.5, (((4 / 3) ** 2 * 2 + (8 / 3) ** 2) / 2) ** 0.5  # row 1: finite entries only
    torch.testing.assert_close(finite_std(z).squeeze(1), torch.tensor([std0, std1]))
    soft = LayerEdit.of("soft", [1, 2], [0.5, 0.5], 4).apply(z)
    torch.testing.assert_close(soft, torch.tensor([[1.0, -2.0 + 0.5 * std0, 0.5 + 0.5 * std0, 3.0],
                                                   [0.0, 0.5 * std1, 4.0 + 0.5 * std1, float("-inf")]]))
    hard = LayerEdit.of("hard", [1, 2], [0.01, 0.01], 4).apply(z)
    torch.testing.assert_close(hard, torch.tensor([[1.0, 3.01, 3.01, 3.0], [0.0, 4.01, 4.01, float("-inf")]]))
    aff = LayerEdit.of("affinity", [1, 3], [0.1, 0.2], 4).apply(z)
    torch.testing.assert_close(aff, torch.tensor([[1.0, -2.0 + 0.1 * 2.0, 0.5, 3.0 + 0.2 * 3.0],
                                                  [0.0, 0.0, 4.0, float("-inf")]]))
    masked = LayerEdit.of("mask", [1, 2], [0.0, 0.0], 4).apply(z)
    assert masked[:, 1:3].isneginf().all() and torch.equal(masked[:, [0, 3]], z[:, [0, 3]])


def test_pins_hold_where_logit_order_does_not_decide():
    # DeepSeek-V3: a large correction bias wins the choice; a forced expert still gets in, a barred one never
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    kw = dict(n_group=1, topk_group=1, normalize=True, scaling=1.0, correction_bias=torch.tensor([0.0, 0.0, 0.0, 5.0]))
    _, free = rules.deepseek_v3(logits, 2, **kw)
    assert set(free[0].tolist()) == {0, 3}
    w, forced = rules.deepseek_v3(logits, 2, forced=torch.tensor([False, False, True, False]), **kw)
    assert set(forced[0].tolist()) == {2, 3}
    s = torch.sigmoid(torch.tensor([0.0, -1.0]))
    torch.testing.assert_close(w[0][forced[0].argsort()], s / s.sum())  # un-biased sigmoid weights, renormalised
    _, barred = rules.deepseek_v3(logits, 2, barred=torch.tensor([False, False, False, True]), **kw)
    assert set(barred[0].tolist()) == {0, 1}
    # group-limited V2: a masked expert is never a zero-weight filler of an excluded group
    logits = torch.tensor([[5.0, 4.0, 0.0, 0.0]])
    w, i = rules.deepseek_v2(logits, 2, method="group_limited_greedy", n_group=2, topk_group=1, scaling=1.0,
                             barred=torch.tensor([False, True, False, False]))
    assert 1 not in i[0].tolist() and 0 in i[0].tolist()


# --- every family, at the experts module ---------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_hard_promoted_expert_is_in_every_topk_and_nothing_else_changes(models, ids, family):
    model = models[family]
    adapter = get_adapter(model)
    first, rest = adapter.moe_layers[0], adapter.moe_layers[1:]
    _, base = run(model, adapter, ids)
    target = rarely_chosen(base[first], adapter.num_experts)
    with intervene(model, "hard", [(first, target)]):
        _, seen = run(model, adapter, ids)
    assert all(target in s for s in as_sets(seen[first]["indices"]))
    raw, returned = seen[first]["raw"], seen[first]["returned"]
    assert torch.equal(raw, base[first]["raw"])  # the router's own logits are untouched
    others = [e for e in range(adapter.num_experts) if e != target]
    assert torch.equal(returned[:, others], raw[:, others])  # only the promoted column moved
    edited = raw.clone()
    edited[:, target] = raw.max(-1).values + 1e-3
    torch.testing.assert_close(returned, edited)
    same_routing(seen[first], *expected_routing(adapter, model, first, edited, forced=[target]))
    for layer in rest:  # a later layer sees changed hidden states, but routes by the rule of its own logits
        same_routing(seen[layer], *adapter.route(seen[layer]["raw"], adapter.router(model, layer)))


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_expert_is_never_dispatched(models, ids, family):
    model = models[family]
    adapter = get_adapter(model)
    _, base = run(model, adapter, ids)
    # mask each layer's most used expert
    masked = {layer: int(torch.bincount(base[layer]["indices"].flatten(), minlength=adapter.num_experts).argmax())
              for layer in adapter.moe_layers}
    with intervene(model, "mask", list(masked.items())):
        _, seen = run(model, adapter, ids)
    for layer, expert in masked.items():
        assert expert not in seen[layer]["indices"].unique().tolist()
        edited = seen[layer]["raw"].clone()
        edited[:, expert] = float("-inf")
        same_routing(seen[layer], *expected_routing(adapter, model, layer, edited, barred=[expert]))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", ["soft", "affinity"])
def test_soft_and_affinity_shift_logits_by_the_formula(models, ids, family, kind):
    model = models[family]
    adapter = get_adapter(model)
    layer = adapter.moe_layers[-1]
    experts, lam, s = [1, 2], 0.8, torch.tensor([0.5, -0.25])
    args = dict(strength=lam, scores=s.tolist()) if kind == "affinity" else dict(strength=lam)
    with intervene(model, kind, [(layer, e) for e in experts], **args):
        _, seen = run(model, adapter, ids)
    raw = seen[layer]["raw"]
    edited = raw.clone()
    if kind == "soft":
        edited[:, experts] = raw[:, experts] + lam * raw.std(dim=-1, keepdim=True)  # torch.std: n - 1
    else:
        edited[:, experts] = raw[:, experts] + lam * s * raw[:, experts].abs()
    torch.testing.assert_close(seen[layer]["returned"], edited)
    same_routing(seen[layer], *expected_routing(adapter, model, layer, edited))


@pytest.mark.parametrize("family", FAMILIES)
def test_leaving_the_context_restores_routing_and_outputs_bit_for_bit(models, ids, family):
    model = models[family]
    adapter = get_adapter(model)
    before, base = run(model, adapter, ids)
    layers = adapter.moe_layers
    with intervene(model, "soft", [(layers[-1], 0)], strength=3.0), intervene(model, "mask", [(layers[0], 1)]):
        during, _ = run(model, adapter, ids)
    after, again = run(model, adapter, ids)
    assert not torch.equal(during, before)
    assert torch.equal(after, before)
    for layer in layers:
        assert "forward" not in adapter.router(model, layer).__dict__
        assert torch.equal(again[layer]["indices"], base[layer]["indices"])
        assert torch.equal(again[layer]["weights"], base[layer]["weights"])


def test_nested_interventions_compose_on_one_layer_and_exit_in_any_order(models, ids):
    model = models["qwen3_moe"]
    adapter = get_adapter(model)
    before, _ = run(model, adapter, ids)
    outer = intervene(model, "mask", [(1, 0)]).start()
    inner = intervene(model, "soft", [(1, 3)], strength=1.0).start()
    _, seen = run(model, adapter, ids)
    raw = seen[1]["raw"]
    edited = raw.clone()
    edited[:, 0] = float("-inf")
    finite = raw[:, 1:]
    edited[:, 3] = raw[:, 3] + finite.std(dim=-1)  # std over the finite logits: the masked one is left out
    torch.testing.assert_close(seen[1]["returned"], edited)
    same_routing(seen[1], *expected_routing(adapter, model, 1, edited, barred=[0]))
    outer.stop()  # out of order: the soft edit stays
    _, seen = run(model, adapter, ids)
    torch.testing.assert_close(seen[1]["returned"][:, 0], seen[1]["raw"][:, 0])
    inner.stop()
    assert torch.equal(run(model, adapter, ids)[0], before)


def test_intervention_composes_with_a_trained_delta(tmp_path, ids):
    """Masking the experts a delta trained makes the adapted model route and answer exactly as the base
    model under the same mask; promoting one of them makes the delta count on every token."""
    base_model, adapted = tiny_model(tiny_config("qwen3_moe")), tiny_model(tiny_config("qwen3_moe"))
    adapter = get_adapter(base_model)
    gen = torch.Generator().manual_seed(5)
    name = "model.layers.2.mlp.experts.down_proj"
    rows = torch.tensor([3, 6])
    shape = dict(adapted.named_parameters())[name].shape
    save_delta(tmp_path / "delta.safetensors", {name: (rows, torch.randn(2, *shape[1:], generator=gen))})
    apply_delta(adapted, tmp_path / "delta.safetensors")
    plain_base, plain_adapted = run(base_model, adapter, ids)[0], run(adapted, adapter, ids)[0]
    assert not torch.equal(plain_base, plain_adapted)
    mask = [(2, 3), (2, 6)]
    with intervene(base_model, "mask", mask):
        masked_base = run(base_model, adapter, ids)[0]
    with intervene(adapted, "mask", mask):
        masked_adapted = run(adapted, adapter, ids)[0]
    assert torch.equal(masked_base, masked_adapted)
    with intervene(adapted, "hard", [(2, 3)]):
        promoted, seen = run(adapted, adapter, ids)
    assert all(3 in s for s in as_sets(seen[2]["indices"]))
    with intervene(base_model, "hard", [(2, 3)]):
        assert not torch.equal(run(base_model, adapter, ids)[0], promoted)
    assert torch.equal(run(adapted, adapter, ids)[0], plain_adapted)


def test_routing_capture_sees_the_intervened_routing(models):
    from polyroute.routing.stream import extract_shard

    model = models["olmoe"]
    adapter = get_adapter(model)
    tok = tiny_tokenizer()
    texts, langs = ["The cat sat on the mat.", "Le chat est assis."], ["eng_Latn", "fra_Latn"]
    args = (model, tok, adapter, texts, langs, ["a", "b"], ["p", "p"])
    with intervene(model, "hard", [(1, 5)]):
        steered = extract_shard(*args, languages=["eng_Latn", "fra_Latn"], per_token=True)
    plain = extract_shard(*args, languages=["eng_Latn", "fra_Latn"], per_token=True)
    assert (steered.count[:, 1, 5] == steered.tokens).all()  # every token of every language
    assert (plain.count[:, 1, 5] < plain.tokens).any()
    assert (steered.expert_ids[:, 1, :] == 5).any(-1).all()


def test_enforce_routing_is_a_mask_of_the_other_experts(models, ids):
    model = models["mixtral"]
    adapter = get_adapter(model)
    with enforce_routing(model, adapter, {1: [0, 2]}):
        _, seen = run(model, adapter, ids)
    assert set(seen[1]["indices"].unique().tolist()) == {0, 2}


def test_from_expert_set_reads_kind_experts_scores_and_first_strength(models, ids):
    model = models["qwen3_moe"]
    adapter = get_adapter(model)
    data = {"kind": "affinity", "experts": [[2, 1], [2, 4]], "scores": [0.4, 0.6], "strengths": [0.5, 0.9]}
    with from_expert_set(model, data):
        _, seen = run(model, adapter, ids)
    raw = seen[2]["raw"]
    edited = raw.clone()
    edited[:, [1, 4]] = raw[:, [1, 4]] + 0.5 * torch.tensor([0.4, 0.6]) * raw[:, [1, 4]].abs()
    torch.testing.assert_close(seen[2]["returned"], edited)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="hard", experts=[(7, 0)]), "layer 7 is not a MoE layer"),
    (dict(kind="hard", experts=[(1, 8)]), "expert 8 of layer 1 is outside 0..7"),
    (dict(kind="boost", experts=[(1, 0)]), "unknown intervention kind 'boost'"),
    (dict(kind="mask", experts=[(1, 0)], strength=0.5), "mask takes no strength"),
    (dict(kind="affinity", experts=[(1, 0)]), "affinity needs scores"),
    (dict(kind="affinity", experts=[(1, 0)], scores=[1.0, 2.0]), "2 scores for 1 experts"),
    (dict(kind="soft", experts=[(1, 0), (1, 0)]), "listed more than once"),
    (dict(kind="hard", experts=[(1, 0), (1, 1), (1, 2)]), "3 experts forced into the top-k, but the model routes only k=2"),
    (dict(kind="mask", experts=[(1, e) for e in range(7)]), "7 of 8 experts barred leaves fewer than k=2"),
    (dict(kind="soft", experts=[(1, "x")]), "is not a (layer, expert) pair"),
])
def test_bad_settings_are_one_line_errors_before_the_model_is_touched(models, kwargs, message):
    model = models["qwen3_moe"]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        intervene(model, **kwargs)
    assert "\n" not in str(info.value)
    assert all("forward" not in get_adapter(model).router(model, l).__dict__ for l in (0, 1, 2))


def test_group_limits_of_deepseek_are_checked(models):
    v3 = models["deepseek_v3"]  # 8 experts in 4 groups of 2; a group is scored by its best two; topk_group 2
    with pytest.raises(ValueError, match="can leave the chosen expert groups with fewer than k=2"):
        intervene(v3, "mask", [(1, 0), (1, 2), (1, 4)])  # only one group keeps two scorable experts
    intervene(v3, "mask", [(1, 0), (1, 1)])  # a whole group barred: three groups remain
    v2 = tiny_model(tiny_config("deepseek_v2", num_experts_per_tok=3))
    with pytest.raises(ValueError, match="forced experts span more than topk_group=2 expert groups"):
        intervene(v2, "hard", [(1, 0), (1, 2), (1, 4)])
