"""Our evaluation equals lm-evaluation-harness' on the demo model and the shipped items, item by item.

The harness runs its own task files (belebele, mgsm_direct, mgsm_native_cot, tydiqa_goldp,
multiblimp), pointed at the demo bundle's local files in the Hub schemas (one small YAML per task
that includes the harness' own and overrides only where the data lives), on the same model object
through ``HFLM(pretrained=model, tokenizer=...)``. We compare prompts, log-likelihoods, generations,
filtered answers and per-item metrics.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")

from polyroute.data import load_records  # noqa: E402
from polyroute.evaluate.runner import EvalSettings, run_task  # noqa: E402
from polyroute.evaluate.tasks import get_task  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "demo"
MODEL = ROOT / "resources" / "models" / "polyroute-tiny-qwen3moe"
HARNESS_TASKS = Path(lm_eval.__file__).parent / "tasks"
MAX_NEW = 12
LIMIT = 4

# (our task, language, harness yaml, split file, our split, harness overrides)
CASES = {
    "belebele": ("swh_Latn", "belebele/belebele_swh_Latn.yaml", "belebele/swh_Latn/test.jsonl", "test", {}),
    "belebele_fewshot": ("ell_Grek", "belebele/belebele_ell_Grek.yaml", "belebele/ell_Grek/test.jsonl", "test",
                         {"num_fewshot": 2}),
    "mgsm_direct": ("swh_Latn", "mgsm/direct/mgsm_direct_sw.yaml", "mgsm/sw/test.jsonl", "test",
                    {"training_split": None}),
    "mgsm_native_cot": ("rus_Cyrl", "mgsm/native_cot/mgsm_native_cot_ru.yaml", "mgsm/ru/test.jsonl", "test",
                        {"training_split": None}),
    "tydiqa": ("arb_Arab", "tydiqa/tydiqa_goldp_ar.yaml", "tydiqa/secondary_task/validation.jsonl", "validation",
               {"training_split": None, "fewshot_split": None}),
    "multiblimp": ("deu_Latn", "multiblimp/multiblimp_deu.yaml", "multiblimp/deu/train.jsonl", "train", {}),
}


def _our_task(case: str) -> str:
    return case.removesuffix("_fewshot")


@pytest.fixture(scope="module")
def model():
    from polyroute.models.loading import load_model

    return load_model(str(MODEL), dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def harness(model, tmp_path_factory):
    """Samples of the harness' own evaluation, keyed by our case name."""
    import yaml
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    include = tmp_path_factory.mktemp("harness_tasks")
    fewshot = {}
    for case, (language, task_yaml, data, split, overrides) in CASES.items():
        overrides = dict(overrides)
        if "num_fewshot" in overrides:
            fewshot[f"polyroute_{case}"] = overrides.pop("num_fewshot")
        task = get_task(_our_task(case))
        if task.output == "generate":  # the harness' own stop sequences, a shorter answer for speed
            until = task.until(task.code(language))
            overrides["generation_kwargs"] = {"until": until, "do_sample": False, "max_gen_toks": MAX_NEW}
        config = {"include": str(HARNESS_TASKS / task_yaml), "task": f"polyroute_{case}", "dataset_path": "json",
                  "dataset_name": None, "dataset_kwargs": {"data_files": {split: str(DEMO / data)}}, **overrides}
        (include / f"{case}.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    net, tok = model
    lm = HFLM(pretrained=net, tokenizer=tok, batch_size=1)
    manager = TaskManager(include_path=str(include))
    samples = {}
    for name in [f"polyroute_{case}" for case in CASES]:
        out = simple_evaluate(model=lm, tasks=[name], task_manager=manager, log_samples=True, limit=LIMIT,
                              bootstrap_iters=0, num_fewshot=fewshot.get(name))
        samples[name.removeprefix("polyroute_")] = {(s["doc_id"], s["filter"]): s for s in out["samples"][name]}
    return samples


def _ours(model, case: str) -> list[dict]:
    language, _, _, split, overrides = CASES[case]
    task = get_task(_our_task(case))
    frame = load_records(task.dataset, language, split=split, local_dir=DEMO)
    items = frame.to_dict(orient="records")
    settings = EvalSettings(num_fewshot=overrides.get("num_fewshot", 0), batch_size=4, max_new_tokens=MAX_NEW,
                            bootstrap=100)
    net, tok = model
    result = run_task(net, tok, task, items[:LIMIT], language=language, pool=items, settings=settings)
    return result["items"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_prompts_and_predictions_as_the_harness(model, harness, case: str) -> None:
    ours = _ours(model, case)
    theirs = harness[case]
    task = get_task(_our_task(case))
    assert len(ours) == LIMIT
    for doc_id, mine in enumerate(ours):
        for metric in task.metrics:
            name, _, filter_name = metric.partition(",")
            sample = theirs[(doc_id, filter_name or "none")]
            assert mine["prompt"] == sample["arguments"][0][0]
            if task.output == "choice":
                lls = [resp[0][0] for resp in sample["resps"]]
                assert mine["loglikelihoods"] == pytest.approx(lls, abs=1e-4)
                assert [task.target_delimiter + c for c in mine["choices"]] == [a[1] for a in sample["arguments"]]
            else:
                assert mine["generation"] == sample["resps"][0][0]
                if filter_name:
                    assert mine["filtered"][filter_name] == sample["filtered_resps"][0]
            assert float(mine[metric]) == pytest.approx(float(sample[name])), metric
