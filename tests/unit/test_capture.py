"""Routing capture against an independent reference built from `output_router_logits=True`."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from polyroute.models import get_adapter
from polyroute.models.families import GptOssAdapter
from polyroute.models.tiny import tiny_config, tiny_model, tiny_tokenizer
from polyroute.routing.capture import detect_output_kind
from polyroute.routing.stream import extract_shard

torch.set_num_threads(1)

FAMILIES = ["qwen2_moe", "qwen3_moe", "olmoe", "mixtral", "phimoe", "gpt_oss", "deepseek_v2", "deepseek_v3"]
LANGS = ["eng_Latn", "fra_Latn", "deu_Latn"]
TEXTS = [
    "The cat sat on the mat.", "Le chat est assis.", "Hi", "Der Hund schlaeft im Garten, ruhig.",
    "A much longer English sentence, to make the padding obvious.", "Oui!", "",
]
TEXT_LANGS = ["eng_Latn", "fra_Latn", "eng_Latn", "deu_Latn", "eng_Latn", "fra_Latn", "deu_Latn"]
SEQ_IDS = [f"s{i}" for i in range(len(TEXTS))]
PAR_IDS = ["p0", "p0", "p1", "p0", "p2", "p1", "p3"]


@pytest.fixture(scope="module")
def models():
    return {t: tiny_model(tiny_config(t)) for t in FAMILIES}


def reference(model, adapter, tokenizer, max_length=64):
    """Per sequence, alone (no padding): router logits from output_router_logits, the family's rule, numpy loops."""
    E, k, L = adapter.num_experts, adapter.top_k, len(adapter.moe_layers)
    S = len(TEXTS)
    count = np.zeros((len(LANGS), L, E))
    gate = np.zeros((len(LANGS), L, E))
    prob = np.zeros((len(LANGS), L, E))
    seq_count = np.zeros((S, L, E))
    seq_gate = np.zeros((S, L, E))
    seq_prob = np.zeros((S, L, E))
    ids_all, w_all = [], []
    for s, text in enumerate(TEXTS):
        ids = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_router_logits=True)
        assert len(out.router_logits) == L
        g = LANGS.index(TEXT_LANGS[s])
        tok_ids = np.zeros((len(ids), L, k), dtype=np.int64)
        tok_w = np.zeros((len(ids), L, k))
        for j, (layer, logits) in enumerate(zip(adapter.moe_layers, out.router_logits)):
            w, idx = adapter.route(logits, adapter.router(model, layer))
            p = torch.softmax(logits.float(), -1).numpy()
            for t in range(len(ids)):
                order = np.argsort(idx[t].numpy())
                tok_ids[t, j] = idx[t].numpy()[order]
                tok_w[t, j] = w[t].numpy()[order]
                for e, we in zip(idx[t].tolist(), w[t].tolist()):
                    count[g, j, e] += 1
                    gate[g, j, e] += we
                    seq_count[s, j, e] += 1
                    seq_gate[s, j, e] += we
                prob[g, j] += p[t]
                seq_prob[s, j] += p[t]
        ids_all.append(tok_ids)
        w_all.append(tok_w)
    return dict(count=count, gate=gate, prob=prob, seq_count=seq_count, seq_gate=seq_gate, seq_prob=seq_prob,
                ids=np.concatenate(ids_all), weights=np.concatenate(w_all))


def run(model, adapter, tokenizer, batch_tokens, per_token=True, **kw):
    return extract_shard(model, tokenizer, adapter, TEXTS, TEXT_LANGS, SEQ_IDS, PAR_IDS, languages=LANGS,
                         batch_tokens=batch_tokens, max_length=64, per_token=per_token, **kw)


@pytest.mark.parametrize("model_type", FAMILIES)
def test_capture_matches_reference(models, model_type):
    model = models[model_type]
    adapter = get_adapter(model)
    ref = reference(model, adapter, tiny_tokenizer())
    k = adapter.top_k
    for side in ("left", "right"):
        tokenizer = tiny_tokenizer(side)
        for batch_tokens in (1, 4096):  # batch size 1 (budget below any sequence) and all sequences at once
            r = run(model, adapter, tokenizer, batch_tokens)
            r.check_invariant()
            np.testing.assert_array_equal(r.count, ref["count"])
            np.testing.assert_allclose(r.gate_sum, ref["gate"], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(r.prob_sum, ref["prob"], rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(r.seq_count, ref["seq_count"])
            np.testing.assert_allclose(r.seq_prob_sum, ref["seq_prob"], rtol=1e-5, atol=1e-5)
            # the routing weights the model applied, per sequence (Bandarkar's divergence input)
            np.testing.assert_allclose(r.seq_gate_sum, ref["seq_gate"], rtol=1e-5, atol=1e-5)
            lengths = [len(tokenizer(t)["input_ids"]) for t in TEXTS]
            np.testing.assert_array_equal(r.seq_tokens, lengths)
            np.testing.assert_array_equal(r.tokens, [sum(n for n, g in zip(lengths, TEXT_LANGS) if g == lang) for lang in LANGS])
            # per-token: same experts (the order within top-k is the router's), weights as float16
            assert r.expert_ids.dtype == np.uint8 and r.expert_weights.dtype == np.float16
            assert r.expert_ids.shape == (sum(lengths), len(adapter.moe_layers), k)
            order = np.argsort(r.expert_ids, axis=-1, kind="stable")
            np.testing.assert_array_equal(np.take_along_axis(r.expert_ids, order, -1), ref["ids"])
            np.testing.assert_allclose(np.take_along_axis(r.expert_weights, order, -1).astype(np.float64),
                                       ref["weights"], rtol=2e-3, atol=1e-3)
            np.testing.assert_array_equal(r.token_sequence, np.repeat(np.arange(len(TEXTS)), lengths))
            np.testing.assert_array_equal(r.token_id, np.concatenate([tokenizer(t)["input_ids"] for t in TEXTS]))
            assert r.seq_id.tolist() == SEQ_IDS and r.seq_parallel_id.tolist() == PAR_IDS


def test_deterministic_and_per_token_off(models):
    model = models["olmoe"]
    adapter = get_adapter(model)
    tok = tiny_tokenizer()
    a, b = run(model, adapter, tok, 50), run(model, adapter, tok, 50)
    for name in ("count", "gate_sum", "prob_sum", "seq_count", "seq_gate_sum", "seq_prob_sum", "expert_ids",
                 "expert_weights"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    c = run(model, adapter, tok, 50, per_token=False)
    assert c.expert_ids is None and c.token_id is None
    assert np.array_equal(c.count, a.count) and np.array_equal(c.gate_sum, a.gate_sum)


def test_oom_halves_the_batch_and_retries(models, caplog):
    model = models["qwen3_moe"]
    adapter = get_adapter(model)
    tok = tiny_tokenizer()
    expected = run(model, adapter, tok, 4096)
    longest = int(expected.seq_tokens.max())

    def fail_big_batches(module, args, output):  # after earlier layers were recorded: tests the commit
        if args[0].shape[0] > 2 * longest:  # more than 2 padded rows reach the last router
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    handle = adapter.router(model, adapter.moe_layers[-1]).register_forward_hook(fail_big_batches)
    try:
        with caplog.at_level(logging.WARNING, logger="polyroute.routing.capture"):
            got = run(model, adapter, tok, 4096)
    finally:
        handle.remove()
    assert "halving" in caplog.text
    for name in ("count", "gate_sum", "prob_sum", "seq_count", "seq_gate_sum", "seq_prob_sum", "expert_ids"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-6, atol=1e-6, err_msg=name)


def test_oom_on_one_sequence_and_other_errors_propagate(models):
    model = models["mixtral"]
    adapter = get_adapter(model)
    for err in (RuntimeError("out of memory"), RuntimeError("shape mismatch")):
        def boom(module, args, output, err=err):
            raise err

        handle = adapter.router(model, 0).register_forward_hook(boom)
        try:
            with pytest.raises(RuntimeError, match=str(err)):
                run(model, adapter, tiny_tokenizer(), 1)
        finally:
            handle.remove()


def test_detect_output_kind():
    logits = torch.randn(5, 8)
    assert detect_output_kind(logits, 2) == "logits"
    scores = torch.zeros(5, 8).scatter_(1, torch.topk(logits, 2).indices, 0.5)
    assert detect_output_kind(scores, 2) == "scores"


class _UnsureGptOss(GptOssAdapter):
    router_output_kind = "auto"


def test_post_topk_scores_are_detected(models):
    """A router whose first output is the dense post-top-k score matrix (as GPT-OSS in transformers 4.x)
    instead of logits; the MoE block here still unpacks three outputs, so weights and ids follow."""
    model = models["gpt_oss"]
    adapter = get_adapter(model)
    tok = tiny_tokenizer()
    expected = run(model, adapter, tok, 4096)
    unsure = _UnsureGptOss(model.config)
    originals = {}
    for layer in adapter.moe_layers:
        router = adapter.router(model, layer)
        originals[layer] = router.forward

        def forward(hidden, _orig=router.forward):
            _, weights, idx = _orig(hidden)
            return torch.zeros(idx.shape[0], 4).scatter_(1, idx, weights), weights, idx

        router.forward = forward
    try:
        got = extract_shard(model, tok, unsure, TEXTS, TEXT_LANGS, SEQ_IDS, PAR_IDS, languages=LANGS,
                            batch_tokens=4096, max_length=64, per_token=False)
    finally:
        for layer, fwd in originals.items():
            adapter.router(model, layer).forward = fwd
    np.testing.assert_array_equal(got.count, expected.count)
    np.testing.assert_allclose(got.gate_sum, expected.gate_sum, rtol=1e-6)
    # only the k scores are known: the soft distribution is the used weights
    np.testing.assert_allclose(got.prob_sum, expected.gate_sum, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(languages_of_texts=TEXT_LANGS[:-1]), "languages_of_texts has 6 entries for 7 texts"),
        (dict(languages_of_texts=["xxx_Latn"] * 7), r"not in `languages`: \['xxx_Latn'\]"),
        (dict(batch_tokens=0), "batch_tokens=0"),
    ],
)
def test_bad_input_fails_early(models, kwargs, message):
    model = models["olmoe"]
    args = dict(languages_of_texts=TEXT_LANGS, batch_tokens=64)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        extract_shard(model, tiny_tokenizer(), get_adapter(model), TEXTS, args["languages_of_texts"], SEQ_IDS,
                      PAR_IDS, languages=LANGS, batch_tokens=args["batch_tokens"], max_length=64)


def test_router_output_variants(models):
    """Routers that return only logits (rule applied) or no logits (remote-code DeepSeek gates: recomputed)."""
    from polyroute.routing.capture import RoutingCapture, _Batch

    model = models["mixtral"]
    adapter = get_adapter(model)
    router = adapter.router(model, 0)
    hidden = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, weights, ids = router(hidden)
    cap = RoutingCapture(model, adapter, 1, per_token=False)
    cap._batch = _Batch(rows=[0], seq_len=6, valid=torch.ones(6), is_pad=torch.zeros(6, 1, dtype=torch.bool),
                        positions=None, sums=torch.zeros(1, 3, 12), ids=None, weights=None)
    for output in (logits, (ids, weights, torch.tensor(0.0))):
        full, used, got_ids = cap._split_output(router, (hidden,), output)
        torch.testing.assert_close(full, logits)
        assert torch.equal(got_ids.sort(-1).values, ids.sort(-1).values)
        torch.testing.assert_close(used.gather(-1, got_ids.argsort(-1)), weights.gather(-1, ids.argsort(-1)))
