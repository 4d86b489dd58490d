"""Adapters: config-only description, routing rules against the routers themselves and hand values, loading."""

from __future__ import annotations

import math

import pytest
import torch

from polyroute.models import SUPPORTED_MODEL_TYPES, describe, get_adapter, load_model
from polyroute.models import rules
from polyroute.models.tiny import tiny_config, tiny_model, tiny_tokenizer

torch.set_num_threads(1)

# hand-derived from polyroute.models.tiny: (MoE layers, E, k)
EXPECTED = {
    "qwen2_moe": ([0, 2], 8, 2),  # mlp_only_layers=[1]
    "qwen3_moe": ([0, 1, 2], 8, 2),
    "olmoe": ([0, 1, 2], 8, 2),
    "mixtral": ([0, 1, 2], 4, 2),
    "phimoe": ([0, 1, 2], 4, 2),
    "gpt_oss": ([0, 1, 2], 4, 2),
    "deepseek_v2": ([1, 2], 8, 2),  # first_k_dense_replace=1
    "deepseek_v3": ([1, 2], 8, 2),
}


@pytest.fixture(scope="module")
def models():
    return {t: tiny_model(tiny_config(t)) for t in EXPECTED}


def test_every_family_has_a_tiny_config():
    assert set(EXPECTED) == set(SUPPORTED_MODEL_TYPES)


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_describe_from_config_alone(model_type):
    info = describe(tiny_config(model_type))
    layers, E, k = EXPECTED[model_type]
    assert (info.model_type, list(info.moe_layers), info.num_experts, info.top_k, info.num_hidden_layers) == (
        model_type, layers, E, k, 3)
    assert info.router_output_kind == "logits"


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_adapter_finds_the_model_modules(models, model_type):
    model = models[model_type]
    adapter = get_adapter(model)
    layers, E, _ = EXPECTED[model_type]
    assert adapter.model_moe_layers(model) == layers
    for layer in layers:
        params = adapter.expert_parameters(model, layer)
        assert {"gate_up_proj", "down_proj"} <= set(params)
        assert all(isinstance(p, torch.nn.Parameter) and p.shape[0] == E for p in params.values())
        router_params = adapter.router_parameters(model, layer)
        assert router_params["weight"].shape == (E, 32)
    if model_type == "gpt_oss":
        assert set(adapter.expert_parameters(model, 0)) == {"gate_up_proj", "gate_up_proj_bias", "down_proj", "down_proj_bias"}
        assert set(adapter.router_parameters(model, 0)) == {"weight", "bias"}
    dense = sorted(set(range(3)) - set(layers))
    for layer in dense:
        with pytest.raises(ValueError, match=f"layer {layer} is not a MoE layer"):
            adapter.router(model, layer)


@pytest.mark.parametrize("model_type", sorted(EXPECTED))
def test_route_reproduces_the_router(models, model_type):
    """adapter.route(logits) gives the weights and experts the model's own router returns."""
    model = models[model_type]
    adapter = get_adapter(model)
    gen = torch.Generator().manual_seed(3)
    for layer in adapter.moe_layers:
        router = adapter.router(model, layer)
        hidden = torch.randn(64, 32, generator=gen)
        with torch.no_grad():
            logits, weights, indices = router(hidden)
            w, i = adapter.route(logits, router)
        order_model, order_rule = indices.argsort(-1), i.argsort(-1)
        assert torch.equal(indices.gather(-1, order_model), i.gather(-1, order_rule))
        torch.testing.assert_close(weights.float().gather(-1, order_model), w.gather(-1, order_rule), rtol=1e-5, atol=1e-6)


def test_softmax_topk_by_hand():
    logits = torch.tensor([[0.0, math.log(2.0), math.log(3.0), math.log(4.0)]])
    w, i = rules.softmax_topk(logits, 2, normalize=False)
    assert i.tolist() == [[3, 2]]
    torch.testing.assert_close(w, torch.tensor([[0.4, 0.3]]))
    w, _ = rules.softmax_topk(logits, 2, normalize=True)
    torch.testing.assert_close(w, torch.tensor([[4 / 7, 3 / 7]]))


def test_topk_softmax_by_hand():
    logits = torch.tensor([[5.0, 1.0, 5.0 - math.log(3.0), -2.0]])
    w, i = rules.topk_softmax(logits, 2)
    assert i.tolist() == [[0, 2]]
    torch.testing.assert_close(w, torch.tensor([[0.75, 0.25]]))


def test_sparsemixer_by_hand():
    # jitter 0.01: band 2*0.01 relative. Pick 1 = expert 0 (logit 10); expert 1 (9.9) lies within
    # (10-9.9)/10 = 0.01 <= 0.02 so it shares the softmax: w1 = e^10/(e^10+e^9.9).
    # Pick 2 = expert 1; within its band only itself ((9.9-5)/9.9 > 0.02): w2 = 1.
    logits = torch.tensor([[10.0, 9.9, 5.0, 1.0]])
    w, i = rules.sparsemixer(logits, 0.01)
    assert i.tolist() == [[0, 1]]
    torch.testing.assert_close(w, torch.tensor([[1 / (1 + math.exp(-0.1)), 1.0]]))


def test_deepseek_v3_bias_steers_choice_not_weights():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    s = torch.sigmoid(logits)[0]
    kw = dict(n_group=1, topk_group=1, normalize=False, scaling=1.0)
    _, i = rules.deepseek_v3(logits, 2, correction_bias=torch.zeros(4), **kw)
    assert sorted(i[0].tolist()) == [0, 1]
    w, i = rules.deepseek_v3(logits, 2, correction_bias=torch.tensor([0.0, 0.0, 0.0, 5.0]), **kw)
    assert i[0].tolist() == [3, 0]
    torch.testing.assert_close(w[0], torch.stack([s[3], s[0]]))  # the un-biased sigmoid scores


def test_deepseek_v2_group_limited_by_hand():
    # groups {0,1} and {2,3}; best group by max score is {2,3} although expert 0 is second best overall
    logits = torch.log(torch.tensor([[0.3, 0.01, 0.39, 0.3]]))
    w, i = rules.deepseek_v2(logits, 2, method="group_limited_greedy", n_group=2, topk_group=1, scaling=2.0)
    assert sorted(i[0].tolist()) == [2, 3]
    torch.testing.assert_close(w[0].sort().values, torch.tensor([0.6, 0.78]))


def test_describe_accepts_a_dict_and_moe_layer_freq():
    cfg = tiny_config("deepseek_v2").to_dict()
    cfg.update(num_hidden_layers=6, moe_layer_freq=2)
    assert describe(cfg).moe_layers == (2, 4)


def test_unknown_family_lists_supported():
    with pytest.raises(ValueError, match="'llama' is not a supported MoE family; supported: deepseek_v2"):
        describe({"model_type": "llama", "num_hidden_layers": 2})


def test_no_moe_layers_is_an_error():
    with pytest.raises(ValueError, match="no MoE layers"):
        describe(tiny_config("qwen2_moe", mlp_only_layers=[0, 1, 2]))


def test_phimoe_needs_top2():
    with pytest.raises(ValueError, match="sparsemixer always routes 2"):
        describe(tiny_config("phimoe", num_experts_per_tok=1))


def test_model_config_mismatch_is_caught(models):
    model = tiny_model(tiny_config("qwen2_moe"))
    model.config.mlp_only_layers = []
    with pytest.raises(ValueError, match=r"config predicts MoE layers \[0, 1, 2\] but the model has \[0, 2\]"):
        get_adapter(model)


def test_load_model_round_trip(tmp_path):
    model = tiny_model(tiny_config("olmoe"))
    model.save_pretrained(tmp_path)
    tok = tiny_tokenizer()
    tok.pad_token = None
    tok.save_pretrained(tmp_path)
    loaded, tokenizer = load_model(str(tmp_path), dtype="float32", device="cpu")
    assert not loaded.training
    assert tokenizer.pad_token_id is not None
    for (name, p), (_, q) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(p, q), name
    assert list((tmp_path).glob("*.safetensors"))


def test_load_model_rejects_bad_dtype():
    with pytest.raises(ValueError, match="dtype 'float8x'"):
        load_model("nowhere", dtype="float8x")


@pytest.mark.parametrize("model_type", ["olmoe", "qwen3_moe"])
def test_untrained_seed_builds_the_architecture_afresh_and_reproducibly(tmp_path, model_type):
    trained = tiny_model(tiny_config(model_type))
    trained.save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    first, tokenizer = load_model(str(tmp_path), dtype="float32", device="cpu", untrained_seed=3)
    again, _ = load_model(str(tmp_path), dtype="float32", device="cpu", untrained_seed=3)
    other, _ = load_model(str(tmp_path), dtype="float32", device="cpu", untrained_seed=4)
    assert not first.training and type(first) is type(trained)
    assert tokenizer.get_vocab() == tiny_tokenizer().get_vocab()
    weights = {name: dict(m.state_dict()) for name, m in (("first", first), ("again", again), ("other", other),
                                                           ("trained", trained))}
    assert {k: v.shape for k, v in weights["first"].items()} == {k: v.shape for k, v in weights["trained"].items()}
    for name, value in weights["first"].items():
        assert torch.equal(value, weights["again"][name]), name  # same seed, same weights
    # random matrices differ between seeds and from the checkpoint (norms start at one in both)
    matrices = [name for name, value in weights["first"].items() if value.dim() == 2]
    assert matrices
    for name in matrices:
        assert not torch.equal(weights["first"][name], weights["other"][name]), name
        assert not torch.equal(weights["first"][name], weights["trained"][name]), name


def test_untrained_auto_dtype_is_the_checkpoints(tmp_path):
    tiny_model(tiny_config("qwen3_moe")).to(torch.bfloat16).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    model, _ = load_model(str(tmp_path), dtype="auto", device="cpu", untrained_seed=0)
    assert model.dtype == torch.bfloat16
