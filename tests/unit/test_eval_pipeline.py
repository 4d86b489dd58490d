"""The evaluate step: config checks, variants that restore the base exactly, the result schema, the
comparison of variants (gains with paired intervals) and the scores handed to the routing statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from polyroute import config as cfg
from polyroute.evaluate.aggregate import interval, statistic
from polyroute.evaluate.compare import gains
from polyroute.evaluate.fewshot import contexts
from polyroute.evaluate.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "resources" / "models" / "polyroute-tiny-qwen3moe"


def _config(**evaluation) -> dict:
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["evaluation"] = evaluation
    raw["interventions"]["tasks"] = None  # the demo's intervention tasks need not be in these blocks
    return raw


@pytest.mark.parametrize("evaluation, message", [
    ({"tasks": {"belebel": {}}}, "'evaluation.tasks.belebel' is not a known task"),
    ({"tasks": {"tydiqa": {"languages": ["deu_Latn"]}}}, "which task tydiqa (tydiqa) does not have"),
    ({"tasks": {"belebele": {"languages": ["kor_Hang"]}}}, "'kor_Hang', which is not in 'languages'"),
    ({"tasks": {"belebele": {"limit": -1}}}, "evaluation.tasks.belebele.limit"),
    ({"tasks": {"multiblimp": {"languages": ["hin_Deva"]}}}, "has no multiblimp train file for"),
    ({"limit": 0}, "'evaluation.limit'"),
    ({"tasks": {"belebele": {"num_fewshot": -2}}}, "num_fewshot"),
    ({"tasks": {"belebele": {"shots": 2}}}, "unknown key 'evaluation.tasks.belebele.shots'"),
    ({"tasks": {"belebele": {}}, "scores": {"task": "mgsm_direct", "metric": "acc"}},
     "'evaluation.scores.task' = 'mgsm_direct' is not in 'evaluation.tasks'"),
    ({"tasks": {"belebele": {}}, "scores": {"task": "belebele", "metric": "f1"}},
     "'evaluation.scores.metric' = 'f1' is not a metric of belebele"),
])
def test_bad_evaluation_settings_are_one_line_errors(evaluation, message) -> None:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.validate(_config(**evaluation))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_task_languages_default_to_the_run_languages_the_task_has() -> None:
    data = cfg.validate(_config(tasks={"tydiqa": None, "mgsm_direct": {}}))
    assert cfg.evaluation_languages("tydiqa", data["evaluation"]["tasks"]["tydiqa"], data["languages"]) == [
        "eng_Latn", "rus_Cyrl", "arb_Arab", "swh_Latn"]  # the run's order, only those TyDiQA has
    mgsm = cfg.evaluation_languages("mgsm_direct", {}, data["languages"])
    assert "ell_Grek" not in mgsm and "swh_Latn" in mgsm and "zho_Hans" in mgsm
    # MultiBLiMP has Hindi, the demo bundle does not: with the bundle as the data, Hindi is left out
    assert "hin_Deva" in cfg.evaluation_languages("multiblimp", None, data["languages"])
    assert "hin_Deva" not in cfg.evaluation_languages("multiblimp", None, data["languages"],
                                                      str(ROOT / "resources" / "demo"))


def test_every_task_has_its_main_metric_and_a_harness_name_where_the_harness_has_it() -> None:
    for task in TASKS.values():
        assert task.main_metric in task.metrics
    assert get_task("belebele").harness(get_task("belebele").code("swh_Latn")) == "belebele_swh_Latn"
    assert get_task("mgsm_native_cot").harness(get_task("mgsm_native_cot").code("zho_Hans")) == "mgsm_native_cot_zh"
    assert get_task("tydiqa").harness(get_task("tydiqa").code("arb_Arab")) == "tydiqa_goldp_ar"
    assert get_task("multiblimp").harness(get_task("multiblimp").code("deu_Latn")) == "multiblimp_deu"
    assert get_task("polymath").harness("sw") is None


def test_fewshot_first_n_skips_the_item_itself_and_random_draws_are_seeded() -> None:
    task = get_task("belebele")
    rows = [{"id": str(i), "context": f"c{i}", "question": f"q{i}", "choices": ["a", "b", "c", "d"], "answer": i % 4}
            for i in range(5)]
    prompts = contexts(task, rows[:2], rows, "swh_Latn", 2)
    assert prompts[0].startswith("P: c1\n") and "P: c2\n" in prompts[0] and "P: c0\n" not in prompts[0].split("\n\n")[0]
    assert prompts[1].startswith("P: c0\n") and "P: c2\n" in prompts[1]
    assert prompts[0].endswith(task.prompt(rows[0], "swh_Latn"))
    shot = task.prompt(rows[1], "swh_Latn") + " B\n\n"  # target delimiter, letter of answer 1, fewshot delimiter
    assert prompts[0].startswith(shot)
    mgsm = get_task("mgsm_direct")
    pool = [{"id": f"t{i}", "question": f"Question: q{i}", "answer": str(i), "cot": f"Step-by-Step Answer: {i}"}
            for i in range(8)]
    items = [{"id": "x", "question": "Wie viel?", "answer": "3", "cot": ""}]
    first = contexts(mgsm, items, pool, "de", 3)
    assert first == contexts(mgsm, items, pool, "de", 3)
    import random

    rnd = random.Random(1234)
    expected = "".join(f"{s['question']}\nAntwort:{s['answer']}\n\n" for s in rnd.sample(pool, 3))
    assert first[0] == expected + "Frage: Wie viel?\nAntwort:"
    with pytest.raises(ValueError, match="few-shot split has 8 items"):
        contexts(mgsm, items, pool, "de", 9)


def test_bootstrap_intervals_cover_the_statistic_and_pairing_cancels_shared_noise() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.random(200)
    base = (difficulty > 0.5).astype(float)
    better = np.where(rng.random(200) < 0.1, 1.0, base)  # the same items, 10% flipped to right
    task = get_task("belebele")
    stat_base = statistic(task, "acc", [{"acc": v} for v in base])
    stat_better = statistic(task, "acc", [{"acc": v} for v in better])
    low, high = interval(stat_base, 200, resamples=500, seed=0)
    assert low <= base.mean() <= high
    from polyroute.evaluate.metrics import bootstrap_ci, paired_bootstrap_ci

    assert (low, high) == pytest.approx(bootstrap_ci(base, resamples=500, seed=0))  # same draws as the mean's
    unpaired = interval(stat_better, 200, resamples=500, seed=0)
    paired = interval(stat_better, 200, versus=stat_base, resamples=500, seed=0)
    assert paired == pytest.approx(paired_bootstrap_ci(better, base, resamples=500, seed=0))
    assert paired[0] > 0  # the paired interval sees a gain the unpaired intervals cannot separate
    assert paired[1] - paired[0] < (unpaired[1] - unpaired[0])


def test_perplexity_statistic_is_a_ratio_of_sums() -> None:
    task = get_task("perplexity")
    records = [{"logprob": -10.0, "tokens": 4, "text": "abcd efg"},
               {"logprob": -30.0, "tokens": 6, "text": "ab cdef ghij"}]
    every = np.arange(2)
    assert statistic(task, "bits_per_byte", records)(every) == pytest.approx(40.0 / 20.0 / np.log(2))
    assert statistic(task, "token_perplexity", records)(every) == pytest.approx(np.exp(4.0))
    assert statistic(task, "word_perplexity", records)(every) == pytest.approx(np.exp(8.0))


def _result(variant: str, kind: str, language: str, scores: list[float], source: str | None = None) -> dict:
    return {"variant": {"name": variant, "kind": kind, "source": source}, "task": "belebele", "language": language,
            "n_items": len(scores), "metrics": {"acc": float(np.mean(scores))},
            "items": [{"id": f"{language}:{i}", "acc": s} for i, s in enumerate(scores)]}


def test_gains_against_base_and_both_random_baselines_by_hand(tmp_path: Path) -> None:
    methods = ("rise", "random", "random-matched", "full")
    for method in methods:
        (tmp_path / method).mkdir()
        (tmp_path / method / "subnetwork.json").write_text(json.dumps({"method": method, "target": "swh_Latn"}))
    results = {}
    for language, base, *scores in (("swh_Latn", [0, 0, 1, 0], [1, 1, 1, 0], [1, 0, 1, 0], [0, 0, 1, 0], [1, 1, 1, 1]),
                                    ("eng_Latn", [1, 1, 0, 1], [1, 1, 0, 0], [1, 1, 0, 1], [1, 1, 0, 1], [0, 0, 0, 0])):
        results[("base", "belebele", language)] = _result("base", "base", language, base)
        for method, score in zip(methods, scores):
            results[(f"{method}-swh_Latn", "belebele", language)] = _result(
                f"{method}-swh_Latn", "adapter", language, score, str(tmp_path / method))
    table = gains(results, resamples=200).set_index(["method", "language"])
    assert table.loc[("rise", "swh_Latn"), "gain"] == pytest.approx(0.75 - 0.25)
    assert table.loc[("rise", "swh_Latn"), "vs_random"] == pytest.approx(0.75 - 0.5)
    assert table.loc[("rise", "swh_Latn"), "vs_matched"] == pytest.approx(0.75 - 0.25)
    assert table.loc[("full", "eng_Latn"), "gain"] == pytest.approx(-0.75)
    assert table.loc[("full", "eng_Latn"), "vs_matched"] == pytest.approx(-0.75)
    assert bool(table.loc[("rise", "swh_Latn"), "is_target"])
    assert table.loc[("rise", "eng_Latn"), "gain"] == pytest.approx(0.5 - 0.75)
    assert not bool(table.loc[("rise", "eng_Latn"), "is_target"])
    # a baseline is not compared with itself
    assert np.isnan(table.loc[("random", "swh_Latn"), "vs_random"])
    assert np.isnan(table.loc[("random-matched", "swh_Latn"), "vs_matched"])
    assert table.loc[("random-matched", "swh_Latn"), "vs_random"] == pytest.approx(0.25 - 0.5)
    low, high = table.loc[("rise", "swh_Latn"), ["gain_ci_low", "gain_ci_high"]]
    assert low <= 0.5 <= high


def test_adapter_variant_changes_the_model_and_restores_it_bit_for_bit(tmp_path: Path) -> None:
    import torch
    from polyroute.evaluate.variants import adapter_variant
    from adapter_files import finished_adapter
    from polyroute.models.loading import load_model

    model, tok = load_model(str(DEMO_MODEL), dtype="float32", device="cpu")
    name = next(n for n, p in model.named_parameters() if "experts.gate_up_proj" in n)
    base = dict(model.named_parameters())[name]
    rows = torch.tensor([1, 3])
    delta = torch.full((2, *base.shape[1:]), 0.5)
    adapter = finished_adapter(tmp_path / "adapter", model, DEMO_MODEL, {name: (rows, delta)})
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.tensor([tok.encode("Pengwini wafalme huishi Antaktika.")])
    with torch.no_grad():
        logits_before = model(ids).logits
        with adapter_variant("rise-swh_Latn", adapter).applied(model):
            inside = dict(model.named_parameters())[name].detach().clone()
            logits_inside = model(ids).logits
        logits_after = model(ids).logits
    assert torch.equal(inside[rows], before[name][rows] + 0.5)
    assert not torch.equal(logits_inside, logits_before)
    assert torch.equal(logits_after, logits_before)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


def test_evaluate_writes_one_result_per_language_with_the_schema(tmp_path: Path) -> None:
    from polyroute.evaluate.variants import BASE
    from polyroute.pipeline.evaluate import evaluate
    from polyroute.pipeline.summary import write_scores
    from polyroute.pipeline.data import download_dataset

    data = {}
    for language in ("swh_Latn", "eng_Latn"):
        data[language] = download_dataset("belebele", language, tmp_path / f"{language}.parquet",
                                          splits=["test"], local_dir=ROOT / "resources" / "demo")
    out = tmp_path / "eval" / "base" / "belebele"
    settings = {"batch_size": 8, "max_new_tokens": 8, "bootstrap": 100, "seed": 0, "limit": 3, "num_fewshot": 1}
    evaluate(model={"id": str(DEMO_MODEL), "dtype": "float32"}, variant=BASE, task="belebele", data=data,
             settings=settings, out=out)
    assert sorted(p.name for p in out.iterdir()) == [".complete", "eng_Latn.json", "swh_Latn.json"]
    assert not Path(f"{out}.partial").exists()
    result = json.loads((out / "swh_Latn.json").read_text())
    for key in ("model", "variant", "task", "language", "harness_task", "n_items", "metrics", "ci95", "settings",
                "items", "polyroute_version", "created"):
        assert key in result, key
    assert result["n_items"] == 3 and len(result["items"]) == 3
    assert result["harness_task"] == "belebele_swh_Latn"
    assert result["metrics"]["acc"] == pytest.approx(np.mean([item["acc"] for item in result["items"]]))
    low, high = result["ci95"]["acc"]
    assert low <= result["metrics"]["acc"] <= high
    scores = write_scores(out, metric="acc", out=tmp_path / "scores.csv")
    assert set(scores["language"]) == {"swh_Latn", "eng_Latn"}
    with pytest.raises(ValueError, match="no items or prompt for deu_Latn"):
        evaluate(model={"id": str(DEMO_MODEL)}, variant=BASE, task="tydiqa", data={"deu_Latn": data["swh_Latn"]},
                 settings=settings, out=tmp_path / "bad")
