"""polyroute.train without DeepSpeed: row deltas, plans, artifacts, data order, RISE Lemma 1 / Theorem 1."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from polyroute.interventions import enforce_routing
from polyroute.models import get_adapter
from polyroute.models.tiny import tiny_config, tiny_model, tiny_tokenizer
from polyroute.train import (TrainSettings, apply_delta, attach_deltas, build_plan, delta_parameters, detach_deltas,
                             experts_by_layer, load_delta, merge, save_delta)
from polyroute.train.artifacts import base_record
from polyroute.train.data import BatchOrder, collate, lr_factor, tokenize_texts

torch.set_num_threads(1)

TEXTS_A = [f"the quick brown fox {i} jumps over the lazy dog {i * 7}" for i in range(12)]


def make_model(seed: int = 0, **overrides):
    cfg = tiny_config("qwen3_moe", **overrides)
    return tiny_model(cfg, seed=seed).float()


def clone_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def effective_params(model) -> dict[str, torch.Tensor]:
    """Every base parameter name -> the tensor the forward really uses (parametrized or not)."""
    out = {}
    for name in [n.replace(".parametrizations.", ".").replace(".original", "") for n, _ in model.named_parameters()
                 if not n.endswith(".delta")]:
        mod, _, attr = name.rpartition(".")
        out[name] = getattr(model.get_submodule(mod), attr).detach().clone()
    return out


def train_plainly(model, texts, steps=6, lr=1e-2, seed=0):
    """A few Adam steps on the deltas only (no DeepSpeed)."""
    tok = tiny_tokenizer()
    seqs = tokenize_texts(tok, texts, 64)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    order = BatchOrder(len(seqs), 4, 1, 1, seed)
    for step in range(steps):
        for ids in order.rank_micro_batches(step, 0):
            model(**collate([seqs[i] for i in ids], tok.pad_token_id)).loss.backward()
        opt.step()
        opt.zero_grad()


# --- settings and subnetwork parsing --------------------------------------------------------------
def test_settings_defaults_follow_rise_and_errors_name_the_key():
    s = TrainSettings.from_dict({})
    assert (s.lr, s.epochs, s.max_length, s.weight_decay, s.warmup_ratio, s.zero_stage) == (2e-5, 3, 512, 0.0, 0.05, 2)
    with pytest.raises(ValueError, match="unknown key.*'lr_rate'"):
        TrainSettings.from_dict({"lr_rate": 1})
    with pytest.raises(ValueError, match="zero_stage=4"):
        TrainSettings.from_dict({"zero_stage": 4})
    with pytest.raises(ValueError, match="micro_batch_size=0"):
        TrainSettings.from_dict({"micro_batch_size": 0})
    assert json.loads(json.dumps(s.as_dict()))["adam_betas"] == [0.9, 0.999]


def test_experts_by_layer_parses_and_rejects():
    assert experts_by_layer({"experts": [[2, 5], [0, 1], [2, 3]]}) == {0: [1], 2: [3, 5]}
    with pytest.raises(ValueError, match="missing key 'experts'"):
        experts_by_layer({})
    with pytest.raises(ValueError, match=r"experts\[1\]=\[0, 1\] is listed twice"):
        experts_by_layer({"experts": [[0, 1], [0, 1]]})
    with pytest.raises(ValueError, match=r"experts\[0\]"):
        experts_by_layer({"experts": [[0, "a"]]})


def test_build_plan_rows_routers_extras_and_errors():
    model = make_model()
    adapter = get_adapter(model)
    plan = build_plan(model, adapter, {"experts": [[0, 1], [0, 5], [2, 3]], "train_routers": True,
                                       "extra_modules": ["model.norm"]})
    assert plan["model.layers.0.mlp.experts.gate_up_proj"].tolist() == [1, 5]
    assert plan["model.layers.0.mlp.experts.down_proj"].tolist() == [1, 5]
    assert plan["model.layers.2.mlp.experts.down_proj"].tolist() == [3]
    assert plan["model.layers.0.mlp.gate.weight"] is None and plan["model.norm.weight"] is None
    assert "model.layers.1.mlp.gate.weight" not in plan  # no experts selected in layer 1
    with pytest.raises(ValueError, match="layer 7 is not a MoE layer"):
        build_plan(model, adapter, {"experts": [[7, 0]]})
    with pytest.raises(ValueError, match=r"expert\(s\) \[8\] of layer 0"):
        build_plan(model, adapter, {"experts": [[0, 8]]})
    with pytest.raises(ValueError, match="'nope' matches no parameter"):
        build_plan(model, adapter, {"experts": [[0, 1]], "extra_modules": ["nope"]})
    with pytest.raises(ValueError, match="nothing to train"):
        build_plan(model, adapter, {"experts": []})


# --- the parametrisation --------------------------------------------------------------------------
def test_zero_delta_is_bit_identical_and_only_deltas_train():
    model = make_model()
    x = torch.tensor([tiny_tokenizer()("hello world, routing!")["input_ids"]])
    before = model(x).logits
    plan = build_plan(model, get_adapter(model), {"experts": [[0, 1], [1, 6]]})
    entries = attach_deltas(model, plan)
    assert torch.equal(model(x).logits, before)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(trainable) == sorted(n for n, _ in model.named_parameters() if n.endswith(".delta"))
    # 2 tensors x 2 layers x 1 expert: exactly the selected rows' size
    cfg = model.config
    per_expert = 2 * cfg.moe_intermediate_size * cfg.hidden_size + cfg.hidden_size * cfg.moe_intermediate_size
    assert sum(p.numel() for p in delta_parameters(entries)) == 2 * per_expert


def test_training_changes_only_selected_rows_and_apply_delta_reproduces(tmp_path):
    model = make_model()
    base = clone_state(model)
    sel = {0: [1, 5], 2: [3]}
    plan = build_plan(model, get_adapter(model), {"experts": [[l, e] for l, es in sel.items() for e in es]})
    entries = attach_deltas(model, plan)
    train_plainly(model, TEXTS_A)
    trained = effective_params(model)
    changed_rows = 0
    for name, w in trained.items():
        if name in plan:
            rows = plan[name]
            keep = torch.ones(w.shape[0], dtype=torch.bool)
            keep[rows] = False
            assert torch.equal(w[keep], base[name][keep]), name  # unselected experts bit-identical
            changed_rows += int((w[rows] != base[name][rows]).flatten(1).any(1).sum())
        else:
            assert torch.equal(w, base[name]), name  # routers, attention, embeddings, norms
    assert changed_rows == 2 * 3  # every selected row of both fused tensors moved
    deltas = {n: (e.param.rows, e.param.delta.detach()) for n, e in entries.items()}
    save_delta(tmp_path / "delta.safetensors", deltas, {"model": "tiny"})
    detach_deltas(entries)
    assert all(torch.equal(v, base[k]) for k, v in model.state_dict().items())  # base untouched
    fresh = apply_delta(make_model(), tmp_path / "delta.safetensors")
    for name, w in fresh.state_dict().items():
        assert torch.equal(w, trained[name]), name  # bit-identical to the trained forward's weights


def test_delta_file_format_and_bad_input(tmp_path):
    rows, d = torch.tensor([1, 5]), torch.randn(2, 3)
    save_delta(tmp_path / "d.safetensors", {"a.w": (rows, d), "b.w": (None, torch.ones(4))}, {"k": [1]})
    got, meta = load_delta(tmp_path / "d.safetensors")
    assert got["a.w"][0].tolist() == [1, 5] and torch.equal(got["a.w"][1], d) and got["b.w"][0] is None
    assert meta["format"] == "polyroute-delta/1" and json.loads(meta["k"]) == [1]
    raw = (tmp_path / "d.safetensors").read_bytes()
    size = int.from_bytes(raw[:8], "little")
    assert size % 8 == 0 and list(json.loads(raw[8:8 + size])["__metadata__"]) == ["format", "k"]  # sorted
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a polyroute delta"):
        load_delta(tmp_path / "plain.safetensors")
    save_delta(tmp_path / "bad.safetensors", {"model.layers.0.mlp.experts.down_proj": (rows, torch.zeros(2, 3))})
    with pytest.raises(ValueError, match="delta has shape"):
        apply_delta(make_model(), tmp_path / "bad.safetensors")


def test_merge_writes_a_loadable_full_checkpoint(tmp_path):
    from transformers import AutoModelForCausalLM

    model = make_model()
    model.save_pretrained(tmp_path / "base", safe_serialization=True)
    tiny_tokenizer().save_pretrained(tmp_path / "base")
    name = "model.layers.1.mlp.experts.gate_up_proj"
    d = torch.randn(1, *model.get_parameter(name).shape[1:])
    save_delta(tmp_path / "delta.safetensors", {name: (torch.tensor([2]), d)},
               base_record(model, tmp_path / "base", None, [name]))
    merge(tmp_path / "base", tmp_path / "delta.safetensors", tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", use_safetensors=True)
    expected = model.get_parameter(name).detach().clone()
    expected[2] += d[0]
    assert torch.equal(merged.get_parameter(name), expected)
    assert torch.equal(merged.get_parameter("lm_head.weight"), model.get_parameter("lm_head.weight"))
    assert (tmp_path / "merged" / "tokenizer.json").exists()


# --- RISE Lemma 1 (gradient isolation) and Theorem 1 (invariance under disjoint routing) -----------
def _routed_experts(model, ids) -> dict[int, set[int]]:
    out = model(ids, output_router_logits=True)
    k = model.config.num_experts_per_tok
    return {layer: set(torch.topk(lg, k, dim=-1).indices.flatten().tolist())
            for layer, lg in enumerate(out.router_logits)}


def test_rise_lemma1_and_theorem1_disjoint_language_is_bit_identical():
    tok = tiny_tokenizer()
    model = make_model(seed=3)
    b_ids = torch.tensor([tok("zq")["input_ids"]])  # "language B": one short text
    used_b = _routed_experts(model, b_ids)
    used_a: dict[int, set[int]] = {l: set() for l in used_b}
    for t in TEXTS_A:
        for l, es in _routed_experts(model, torch.tensor([tok(t)["input_ids"]])).items():
            used_a[l] |= es
    # selected experts: used by the training language A, never by B (in the base model)
    sel = {l: sorted(used_a[l] - used_b[l]) for l in used_b}
    assert sum(map(len, sel.values())) >= 3, sel
    before_b = model(b_ids).logits.detach().clone()
    a_ids = torch.tensor([tok(TEXTS_A[0])["input_ids"]])
    before_a = model(a_ids).logits.detach().clone()
    attach_deltas(model, build_plan(model, get_adapter(model), {"experts": [[l, e] for l, es in sel.items() for e in es]}))
    # Lemma 1: B's loss gives exactly zero gradient to every selected expert
    model(b_ids, labels=b_ids).loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.parameters() if p.requires_grad)
    model.zero_grad()
    train_plainly(model, TEXTS_A, steps=8)
    with torch.no_grad():
        assert torch.equal(model(b_ids).logits, before_b)  # Theorem 1: bit-identical
        assert not torch.equal(model(a_ids).logits, before_a)  # the target language did change


# --- routing enforcement -----------------------------------------------------------------------------
def test_enforce_routing_restricts_topk_to_chosen_experts():
    tok = tiny_tokenizer()
    model = make_model()
    adapter = get_adapter(model)
    ids = torch.tensor([tok(TEXTS_A[0])["input_ids"]])
    seen = {}
    for layer in adapter.moe_layers:
        adapter.router(model, layer).register_forward_hook(
            lambda m, a, o, layer=layer: seen.__setitem__(layer, (o[1].clone(), o[2].clone())))
    model(ids)
    free = dict(seen)
    enforcement = enforce_routing(model, adapter, {0: [1, 5], 2: [3]}).start()
    model(ids)
    assert set(seen[0][1].flatten().tolist()) == {1, 5}
    assert torch.allclose(seen[0][0].sum(-1), torch.ones(ids.shape[1]))  # norm_topk_prob renormalises
    # layer 2 allows one expert but k=2: expert 3 takes all the weight, the filler pick gets 0
    w2, i2 = seen[2]
    assert torch.equal(w2[i2 == 3], torch.ones(ids.shape[1])) and not w2[i2 != 3].any()
    enforcement.stop()
    model(ids)
    assert all(torch.equal(seen[l][1], free[l][1]) for l in adapter.moe_layers)


# --- data order and schedule ------------------------------------------------------------------------
def test_batch_order_is_deterministic_covers_epochs_and_splits_ranks():
    a = BatchOrder(10, micro_batch_size=2, world_size=2, gradient_accumulation=1, seed=7)
    b = BatchOrder(10, micro_batch_size=2, world_size=1, gradient_accumulation=2, seed=7)
    assert a.steps_per_epoch == 3 and a.per_step == 4
    for step in range(6):
        # 2 ranks x 1 slot sees the same micro-batches as 1 rank x 2 slots
        assert a.step_micro_batches(step) == b.step_micro_batches(step)
        assert a.rank_micro_batches(step, 0) + a.rank_micro_batches(step, 1) == b.rank_micro_batches(step, 0)
    epoch0 = [i for s in range(3) for mb in a.step_micro_batches(s) for i in mb]
    assert set(epoch0) == set(range(10)) and len(epoch0) == 12  # wraps 2 to fill the last step
    assert epoch0 != [i for s in range(3, 6) for mb in a.step_micro_batches(s) for i in mb]  # reshuffled
    assert BatchOrder(10, 2, 2, 1, 7).step_micro_batches(4) == a.step_micro_batches(4)


def test_lr_schedule_by_hand():
    # 20 steps, 5% warmup = 1 step: 1.0, then (20 - s) / 19
    assert [round(lr_factor(s, 20, 0.05), 6) for s in (0, 1, 10, 19)] == [1.0, round(19 / 19, 6), round(10 / 19, 6), round(1 / 19, 6)]
    # 10% of 30 = 3 warmup steps: 1/3, 2/3, 1, then decay over 27
    assert [lr_factor(s, 30, 0.1) for s in range(4)] == [1 / 3, 2 / 3, 1.0, 27 / 27]
    assert math.isclose(lr_factor(16, 30, 0.1), 14 / 27)


def test_collate_pads_right_and_masks_labels():
    batch = collate([[5, 6, 7], [8, 9]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, 9, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    with pytest.raises(ValueError, match="nothing to train on"):
        tokenize_texts(tiny_tokenizer(), [""], 16)
