"""Published shapes: the totals the model cards state, and proxies that keep depth, experts, top-k, vocabulary."""

import pytest

from polyroute.models.shapes import parameter_count, proxy_config, published_config, shape_names

# totals from the model cards / the project's own paper arithmetic (bench/README: 30.53 B)
CARD_TOTALS_B = {"Qwen/Qwen3-30B-A3B": 30.53, "allenai/OLMoE-1B-7B-0924": 6.92, "mistralai/Mixtral-8x7B-v0.1": 46.70,
                 "Qwen/Qwen1.5-MoE-A2.7B": 14.32, "microsoft/Phi-3.5-MoE-instruct": 41.87,
                 "deepseek-ai/DeepSeek-V2-Lite": 15.71, "openai/gpt-oss-20b": 20.91}


@pytest.mark.parametrize("name", shape_names())
def test_published_totals_match_the_cards(name):
    assert parameter_count(published_config(name)) / 1e9 == pytest.approx(CARD_TOTALS_B[name], abs=0.01)


@pytest.mark.parametrize("name", shape_names())
def test_proxy_keeps_depth_experts_topk_vocabulary(name):
    real, proxy = published_config(name), proxy_config(name, hidden_size=128)
    for key in ("num_hidden_layers", "vocab_size", "num_experts_per_tok", "num_experts", "num_local_experts",
                "n_routed_experts"):
        assert getattr(proxy, key, None) == getattr(real, key, None), key
    assert proxy.hidden_size == 128
    assert proxy.num_attention_heads % proxy.num_key_value_heads == 0


def test_short_names_and_unknown_names():
    assert published_config("Qwen3-30B-A3B").num_experts == 128
    with pytest.raises(ValueError, match="no published shape for 'nope'"):
        published_config("nope")
    with pytest.raises(ValueError, match="narrower"):
        proxy_config("Qwen3-30B-A3B", hidden_size=4096)


def test_random_model_at_a_proxy_shape_runs_and_is_seeded():
    import torch

    from polyroute.models.shapes import random_model

    config = proxy_config("OLMoE-1B-7B-0924", hidden_size=64)
    a, b = random_model(config, seed=1), random_model(config, seed=1)
    norms = [p for n, p in a.named_parameters() if n.endswith("norm.weight")]
    assert norms and all(bool((p == 1).all()) for p in norms)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with torch.no_grad():
        logits = a(torch.arange(8)[None]).logits
    assert logits.shape == (1, 8, 50304) and bool(torch.isfinite(logits).all())
