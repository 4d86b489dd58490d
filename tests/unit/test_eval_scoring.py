"""Log-likelihood scoring and greedy generation against slow references on the demo model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from polyroute.evaluate.generation import cut_at_stops, generate_greedy, stop_sequences
from polyroute.evaluate.scoring import (Encoded, encode_pair, encode_requests, loglikelihoods, prefix_token_id,
                                        rolling_windows)

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "resources" / "models" / "polyroute-tiny-qwen3moe"

REQUESTS = [
    ("P: Pengwini wafalme huishi Antaktika.\nQ: Wanaishi wapi?\nA: Ulaya\nB: Antaktika\nAnswer:", " A"),
    ("P: Pengwini wafalme huishi Antaktika.\nQ: Wanaishi wapi?\nA: Ulaya\nB: Antaktika\nAnswer:", " B"),
    ("P: Pengwini wafalme huishi Antaktika.\nQ: Wanaishi wapi?\nA: Ulaya\nB: Antaktika\nAnswer:", " C"),
    ("Frage: Wie viele Äpfel hat Anna? \n", "Antwort: 12"),  # trailing whitespace moves to the answer
    ("", "Die Kinder spielen jeden Nachmittag im Garten."),  # empty context: the prefix token
    ("Вопрос: Сколько?", " Ответ — 5"),
]


@pytest.fixture(scope="module")
def demo():
    from polyroute.models.loading import load_model

    return load_model(str(DEMO_MODEL), dtype="float32", device="cpu")


def _reference(model, enc: Encoded) -> tuple[float, bool]:
    """One request alone: the full sequence through the model, log-softmax, sum over the continuation."""
    ids = torch.tensor([list(enc.context + enc.continuation)])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    n_ctx = len(enc.context)
    total, greedy = 0.0, True
    for j, token in enumerate(enc.continuation):
        row = logprobs[n_ctx + j - 1]
        total += float(row[token])
        greedy &= int(row.argmax()) == token
    return total, greedy


def test_encode_pair_splits_as_the_harness(demo) -> None:
    _, tok = demo
    enc = encode_pair(tok, "Frage: x \n", "Antwort")
    assert enc.context == tuple(tok.encode("Frage: x"))
    whole = tok.encode("Frage: x \nAntwort")
    assert enc.context + enc.continuation == tuple(whole)
    empty = encode_pair(tok, "", "Hallo Welt")
    assert empty.context == (prefix_token_id(tok),)
    assert empty.continuation == tuple(tok.encode("Hallo Welt", add_special_tokens=False))


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_loglikelihoods_equal_a_per_request_reference(demo, batch_size: int) -> None:
    model, tok = demo
    encoded = encode_requests(tok, REQUESTS)
    scored = loglikelihoods(model, encoded, batch_size=batch_size, max_length=1024)
    for enc, got in zip(encoded, scored):
        want, greedy = _reference(model, enc)
        assert got.logprob == pytest.approx(want, abs=1e-4)
        assert got.is_greedy == greedy
        assert got.n_tokens == len(enc.continuation)


def test_choices_that_share_their_input_share_one_forward(demo) -> None:
    model, tok = demo
    context = REQUESTS[0][0]
    encoded = encode_requests(tok, [(context, " A"), (context, " B"), (context, " D")])
    single_token = [e for e in encoded if len(e.continuation) == 1]
    assert len(single_token) >= 2, "the demo tokenizer should encode at least two letters as one token"
    loglikelihoods(model, single_token[:1], batch_size=1, max_length=1024)  # the one-time head check, out of the count
    calls = []
    handle = model.get_decoder().register_forward_hook(lambda module, args, out: calls.append(1))
    try:
        loglikelihoods(model, single_token, batch_size=1, max_length=1024)
    finally:
        handle.remove()
    assert len(calls) == 1


def test_left_truncation_keeps_the_continuation(demo) -> None:
    model, tok = demo
    enc = encode_requests(tok, [(" ".join(["Antaktika"] * 60), " Pengwini")])[0]
    short = loglikelihoods(model, [enc], max_length=16)[0]
    kept = Encoded(enc.context[-(16 - len(enc.continuation) + 1):], enc.continuation)
    want, _ = _reference(model, kept)
    assert short.logprob == pytest.approx(want, abs=1e-4)
    with pytest.raises(ValueError, match="exceeds max_length"):
        loglikelihoods(model, [Encoded((1,), tuple(range(3, 40)))], max_length=16)


def test_rolling_windows_predict_every_token_once() -> None:
    tokens = list(range(10, 47))
    for max_length in (1, 5, 8, 37, 64):
        windows = rolling_windows(tokens, 2, max_length)
        predicted = [t for w in windows for t in w.continuation]
        assert predicted == tokens
        for w in windows:
            assert len(w.context) + len(w.continuation) - 1 <= max_length
        assert windows[0].context == (2,)
        for w in windows[1:]:  # each later window conditions on the text just before it
            start = tokens.index(w.continuation[0])
            assert list(w.context) == tokens[start - len(w.context):start]


def test_rolling_windows_match_the_harness() -> None:
    utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(100, 157))
    for max_length in (4, 10, 57, 100):
        theirs = [utils.make_disjoint_window(w)
                  for w in utils.get_rolling_token_windows(tokens, prefix_token=2, max_seq_len=max_length, context_len=1)]
        ours = [(list(w.context), list(w.continuation)) for w in rolling_windows(tokens, 2, max_length)]
        assert ours == [(list(c), list(p)) for c, p in theirs]


def test_cut_at_stops() -> None:
    assert cut_at_stops(" 42\nSwali: next", ["Swali:", "\n"]) == " 42"
    assert cut_at_stops("no stop here", ["\n"]) == "no stop here"
    assert cut_at_stops("a</s>b", ["</s>", ""]) == "a"


def test_generation_stops_at_the_stop_sequence(demo) -> None:
    model, tok = demo
    prompt = "Swali: Amina ana maembe 12. Anampa kaka yake maembe 5.\nAnswer:"
    free = generate_greedy(model, tok, [prompt], until=[], max_new_tokens=24)[0]
    assert len(free) > 8
    stop = free[4:7]
    steps = []
    handle = model.register_forward_hook(lambda module, args, out: steps.append(1))
    try:
        cut = generate_greedy(model, tok, [prompt], until=[stop], max_new_tokens=24)[0]
    finally:
        handle.remove()
    assert cut == free.split(stop)[0]
    assert len(steps) < 24  # it stopped, not merely cut afterwards


def test_batched_generation_equals_one_prompt_at_a_time(demo) -> None:
    model, tok = demo
    prompts = ["Question: 2+2?\nAnswer:", "Swali: Amina ana maembe 12.\nAnswer:",
               "Задача: У Маши 3 яблока.\nAnswer:", "问题： 3 + 4 = ?\nAnswer:"]
    batched = generate_greedy(model, tok, prompts, until=["\n"], max_new_tokens=12, batch_size=4)
    single = [generate_greedy(model, tok, [p], until=["\n"], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert batched == single


def test_stop_sequences_add_eos_once(demo) -> None:
    _, tok = demo
    stops = stop_sequences(tok, ["\n", "\n"])
    assert stops == ["\n", tok.eos_token]


def test_the_head_sees_only_the_continuation_positions(demo) -> None:
    model, tok = demo
    encoded = encode_requests(tok, REQUESTS)
    loglikelihoods(model, encoded[:1], batch_size=1, max_length=1024)  # the one-time head check, out of the count
    seen = []
    handle = model.get_output_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    try:
        loglikelihoods(model, encoded, batch_size=16, max_length=1024)
    finally:
        handle.remove()
    n_read = sum(len(e.continuation) for e in encoded)
    assert sum(shape[0] for shape in seen) == n_read  # [positions, hidden]: never [batch, tokens, hidden]
    assert all(len(shape) == 2 for shape in seen)


def test_small_logit_chunks_give_the_same_scores(demo, monkeypatch) -> None:
    from polyroute.evaluate import positions

    model, tok = demo
    encoded = encode_requests(tok, REQUESTS)
    whole = loglikelihoods(model, encoded, batch_size=16, max_length=1024)
    monkeypatch.setattr(positions, "_CHUNK_BYTES", 4 * model.config.vocab_size * 3)  # 3 positions a chunk
    chunked = loglikelihoods(model, encoded, batch_size=16, max_length=1024)
    assert [s.logprob for s in chunked] == pytest.approx([s.logprob for s in whole], abs=1e-6)
    assert [s.is_greedy for s in chunked] == [s.is_greedy for s in whole]


class _ScaledLogits(torch.nn.Module):
    """A causal LM that post-processes its logits (as soft-capping families do): decoder + head would be wrong."""

    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def get_decoder(self):
        return self.inner.get_decoder()

    def get_output_embeddings(self):
        return self.inner.get_output_embeddings()

    def forward(self, input_ids, **kwargs):
        out = self.inner(input_ids=input_ids, **kwargs)
        out.logits = 30.0 * torch.tanh(out.logits / 30.0)
        return out


def test_post_processed_logits_fall_back_to_the_full_forward(demo) -> None:
    model, tok = demo
    wrapped = _ScaledLogits(model)
    encoded = encode_requests(tok, REQUESTS)
    got = loglikelihoods(wrapped, encoded, batch_size=4, max_length=1024)
    for enc, score in zip(encoded, got):
        ids = torch.tensor([list(enc.context + enc.continuation)])
        with torch.no_grad():
            logprobs = torch.log_softmax(wrapped(ids).logits[0].double(), dim=-1)
        want = sum(float(logprobs[len(enc.context) + j - 1, t]) for j, t in enumerate(enc.continuation))
        assert score.logprob == pytest.approx(want, abs=1e-4)


def test_out_of_memory_halves_the_batch(demo, monkeypatch) -> None:
    from polyroute.evaluate import scoring

    model, tok = demo
    encoded = encode_requests(tok, REQUESTS)
    want = loglikelihoods(model, encoded, batch_size=16, max_length=1024)
    real, widths = scoring.score_positions, []

    def small_memory(model, ids, *args):
        widths.append(ids.shape[0])
        if ids.shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 41.00 GiB")
        return real(model, ids, *args)

    monkeypatch.setattr(scoring, "score_positions", small_memory)
    got = loglikelihoods(model, encoded, batch_size=16, max_length=1024)
    assert [s.logprob for s in got] == pytest.approx([s.logprob for s in want], rel=1e-6)  # other padding widths
    assert max(widths) > 2 and widths[-1] <= 2


GEN_PROMPTS = ["Question: 2+2?\nAnswer:", "Swali: Amina ana maembe 12. Anampa kaka yake maembe 5.\nAnswer:",
               "Задача: У Маши 3 яблока.\nAnswer:", "问题： 3 + 4 = ?\nAnswer:", "Frage: Wie viele?\nAntwort:"]


def _generate_both(model, tok, **kwargs):
    plain = generate_greedy(model, tok, GEN_PROMPTS, static_cache=False, stop_check_every=1, **kwargs)
    fast = generate_greedy(model, tok, GEN_PROMPTS, static_cache=True, stop_check_every=8, width_multiple=16, **kwargs)
    return plain, fast


@pytest.mark.parametrize("until", [["\n"], ["a"], []])
def test_static_cache_and_late_stop_checks_give_identical_greedy_outputs(demo, until) -> None:
    model, tok = demo
    plain, fast = _generate_both(model, tok, until=until, max_new_tokens=20, batch_size=3)
    assert fast == plain
    assert any(fast)


def test_static_cache_keeps_interventions_and_adapters(demo) -> None:
    from polyroute.interventions.context import intervene
    from polyroute.models import get_adapter

    model, tok = demo
    layers = get_adapter(model).moe_layers
    base, _ = _generate_both(model, tok, until=["\n"], max_new_tokens=16, batch_size=5)
    with intervene(model, "mask", [(layer, e) for layer in layers for e in range(4)]):
        plain, fast = _generate_both(model, tok, until=["\n"], max_new_tokens=16, batch_size=5)
    assert fast == plain and plain != base  # the edit changed the outputs, on both paths alike
    weight = model.get_decoder().layers[layers[0]].mlp.experts.down_proj
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.mul_(-3.0)  # an adapter edits expert weights in place, as variants.adapter_variant does
    try:
        plain, fast = _generate_both(model, tok, until=["\n"], max_new_tokens=16, batch_size=5)
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert fast == plain and plain != base


def test_batches_respect_both_the_input_and_the_token_budget_by_hand() -> None:
    from polyroute.devices import token_budget_batches

    def _plan_batches(order, batch_size, batch_tokens):  # as loglikelihoods plans its inputs
        return token_budget_batches([len(inp) for inp in order], batch_tokens, max_rows=batch_size)

    order = [(1,) * 5, (1,) * 4, (1,) * 4, (1,) * 3, (1,) * 2, (1,) * 1]
    assert [len(b) for b in _plan_batches(order, batch_size=16, batch_tokens=10)] == [2, 2, 2]  # padded 2x5, 2x4, 2x2
    assert [len(b) for b in _plan_batches(order, batch_size=4, batch_tokens=100)] == [4, 2]
    assert [len(b) for b in _plan_batches(order, batch_size=16, batch_tokens=3)] == [1, 1, 1, 1, 1, 1]


def test_a_small_token_budget_gives_the_same_scores(demo) -> None:
    model, tok = demo
    encoded = encode_requests(tok, REQUESTS)
    whole = loglikelihoods(model, encoded, batch_size=16, max_length=1024)
    capped = loglikelihoods(model, encoded, batch_size=16, batch_tokens=40, max_length=1024)
    assert [s.logprob for s in capped] == pytest.approx([s.logprob for s in whole], rel=1e-6)
