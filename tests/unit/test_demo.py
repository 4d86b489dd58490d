"""The embedded demo: data bundle (schemas, parallelism, single source), tokenizer and tiny MoE."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from polyroute import demo, languages
from polyroute.demo.model import model_config
from polyroute.data import load_records

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "resources" / "demo" / "source"
BUNDLE = ROOT / "resources" / "demo"
MODEL = ROOT / "resources" / "models" / "polyroute-tiny-qwen3moe"

FLORES_FIELDS = {"id", "iso_639_3", "iso_15924", "glottocode", "text", "url", "domain", "topic",
                 "has_image", "has_hyperlink", "last_updated"}
BELEBELE_FIELDS = {"link", "question_number", "flores_passage", "question", "mc_answer1",
                   "mc_answer2", "mc_answer3", "mc_answer4", "correct_answer_num", "dialect", "ds"}
MGSM_FIELDS = {"question", "answer", "answer_number", "equation_solution"}
TYDIQA_FIELDS = {"id", "title", "context", "question", "answers"}
POLYMATH_FIELDS = {"id", "question", "answer"}
MULTIBLIMP_FIELDS = {"sen", "verb", "verb_idx", "wrong_sen", "wrong_verb", "phenomenon", "lang",
                     "grammatical_feature", "ungrammatical_feature"}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _bundle_languages() -> list[str]:
    return sorted(languages.from_dataset_code(p.name, "flores_plus")
                  for p in (BUNDLE / "flores_plus").iterdir())


def _bundle_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jsonl"))}


# --- data bundle ------------------------------------------------------------------------------

def test_bundle_covers_ten_languages_and_four_scripts():
    langs = _bundle_languages()
    assert len(langs) >= 10
    assert len({languages.script(c) for c in langs}) >= 4
    assert "swh_Latn" in langs  # the demo's weak target language


def test_bundle_is_generated_from_its_single_source(tmp_path):
    # The jsonl files are output, never edited by hand: regenerating gives the same bytes.
    written = demo.build_bundle(SOURCE, tmp_path)
    fresh = _bundle_files(tmp_path)
    assert len(written) == len(fresh)
    committed = {k: v for k, v in _bundle_files(BUNDLE).items()
                 if not k.startswith(("source/", "corpus/"))}  # the corpus has its own builder
    assert fresh == committed


@pytest.mark.parametrize("split,size", [("dev", demo.DEV_SIZE), ("devtest", 50)])
def test_flores_same_parallel_ids_in_every_language(split, size):
    ids = {}
    for lang in _bundle_languages():
        frame = load_records("flores_plus", lang, split=split, local_dir=BUNDLE)
        ids[lang] = list(frame["parallel_id"])
        assert frame["text"].str.len().min() > 0
    reference = ids["eng_Latn"]
    assert len(reference) == size and len(set(reference)) == size
    assert all(v == reference for v in ids.values())


def test_flores_rows_in_real_schema():
    for config in sorted((BUNDLE / "flores_plus").iterdir()):
        for split in ("dev", "devtest"):
            rows = _jsonl(config / f"{split}.jsonl")
            assert all(set(r) == FLORES_FIELDS for r in rows)
            assert [r["id"] for r in rows] == list(range(1, len(rows) + 1))
            assert {f"{r['iso_639_3']}_{r['iso_15924']}" for r in rows} == {config.name}
            assert all(isinstance(r["has_image"], bool) for r in rows)
            # 8-25 words, FLORES-like (Chinese has no spaces: count characters instead)
            if config.name != "cmn_Hans":
                assert all(5 <= len(r["text"].split()) <= 30 for r in rows), config.name


@pytest.mark.parametrize("dataset,fields,min_items,min_langs", [
    ("belebele", BELEBELE_FIELDS, 6, 10),
    ("mgsm", MGSM_FIELDS, 8, 7),
    ("polymath", POLYMATH_FIELDS, 4, 8),
    ("multiblimp", MULTIBLIMP_FIELDS, 8, 5),
])
def test_task_files_parse_in_schema_and_load_as_records(dataset, fields, min_items, min_langs):
    files = sorted((BUNDLE / dataset).glob("*/*.jsonl"))
    assert len(files) >= min_langs
    parallel = {}
    for f in files:
        rows = _jsonl(f)
        assert len(rows) >= min_items and all(set(r) == fields for r in rows), f
        lang = languages.from_dataset_code(f.parent.name, dataset)
        frame = load_records(dataset, lang, split=f.stem, local_dir=BUNDLE)
        assert len(frame) == len(rows)
        parallel[lang] = list(frame["parallel_id"])
    if dataset != "multiblimp":  # the others are parallel: same ids in every language
        first = next(iter(parallel.values()))
        assert all(v == first for v in parallel.values())


def test_belebele_answers_and_passages():
    for f in sorted((BUNDLE / "belebele").glob("*/test.jsonl")):
        for r in _jsonl(f):
            assert r["correct_answer_num"] in {"1", "2", "3", "4"}
            assert r["dialect"] == f.parent.name
            assert len({r[f"mc_answer{i}"] for i in range(1, 5)}) == 4
    eng = {r["link"]: r["flores_passage"] for r in _jsonl(BUNDLE / "belebele/eng_Latn/test.jsonl")}
    flores = _jsonl(BUNDLE / "flores_plus/eng_Latn/devtest.jsonl")
    for link, passage in eng.items():  # the passage is that page's FLORES sentences
        assert passage == " ".join(r["text"] for r in flores if r["url"] == link)


def test_tydiqa_answers_are_spans_and_ids_have_language_prefixes():
    rows = _jsonl(BUNDLE / "tydiqa/secondary_task/validation.jsonl")
    assert all(set(r) == TYDIQA_FIELDS for r in rows)
    for r in rows:
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
            assert r["context"][start:start + len(text)] == text
    prefixes = {r["id"].split("-")[0] for r in rows}
    assert {"english", "arabic", "russian", "swahili"} <= prefixes
    assert len({r["id"] for r in rows}) == len(rows)
    for lang in ("eng_Latn", "swh_Latn", "rus_Cyrl", "arb_Arab"):
        assert len(load_records("tydiqa", lang, split="validation", local_dir=BUNDLE)) >= 6


def test_mgsm_answers_match_across_languages_and_polymath_ids():
    answers = {f.parent.name: [r["answer_number"] for r in _jsonl(f)]
               for f in (BUNDLE / "mgsm").glob("*/test.jsonl")}
    assert len(set(map(tuple, answers.values()))) == 1
    assert all(isinstance(a, int) for a in answers["en"])
    for f in (BUNDLE / "polymath").glob("*/low.jsonl"):
        assert [r["id"] for r in _jsonl(f)] == [f"low-{f.parent.name}-{i}" for i in range(4)]


def test_multiblimp_pairs_differ_in_the_marked_verb():
    for f in sorted((BUNDLE / "multiblimp").glob("*/train.jsonl")):
        for r in _jsonl(f):
            good, bad = r["sen"].split(), r["wrong_sen"].split()
            assert good[r["verb_idx"]] == r["verb"] and bad[r["verb_idx"]] == r["wrong_verb"]
            assert [w for i, w in enumerate(good) if i != r["verb_idx"]] == \
                   [w for i, w in enumerate(bad) if i != r["verb_idx"]]
            assert r["lang"] == f.parent.name


def _copy_source(tmp_path: Path) -> Path:
    src = tmp_path / "source"
    shutil.copytree(SOURCE, src)
    return src


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("path,old,new,message", [
    ("tydiqa/eng_Latn.tsv", "\t1440\n", "\t1441\n", "not a span"),
    ("belebele/fra_Latn.tsv", "21\t1\t2\t", "21\t1\t3\t", "disagrees"),
    ("mgsm/deu_Latn.tsv", "\t144\n", "\t145\n", "disagrees"),
    ("multiblimp/eng_Latn.tsv", "The children plays", "A children plays", "exactly one word"),
    ("belebele/eng_Latn.tsv", "21\t1\t2\t", "21\t1\t5\t", "not in 1..4"),
])
def test_bad_sources_are_one_line_errors(tmp_path, path, old, new, message):
    src = _copy_source(tmp_path)
    _edit(src / path, old, new)
    with pytest.raises(ValueError, match=message):
        demo.build_bundle(src, tmp_path / "out")


def test_missing_sentence_is_an_error_naming_the_file(tmp_path):
    src = _copy_source(tmp_path)
    f = src / "flores" / "ell_Grek.txt"
    f.write_text("\n".join(f.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="ell_Grek.txt has 149 sentences"):
        demo.build_bundle(src, tmp_path / "out")
    with pytest.raises(ValueError, match="no articles.tsv"):
        demo.build_bundle(tmp_path / "nowhere", tmp_path / "out")


# --- tokenizer and model ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL)


def test_tokenizer_round_trips_every_script_without_unknowns(tokenizer):
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"
    assert tokenizer.unk_token_id is None  # byte-level: nothing is unknown
    assert 4000 <= len(tokenizer) <= 8192
    for lang in _bundle_languages():
        for split in ("dev", "devtest"):
            config = languages.to_dataset_code(lang, "flores_plus")
            for row in _jsonl(BUNDLE / "flores_plus" / config / f"{split}.jsonl"):
                ids = tokenizer(row["text"])["input_ids"]
                assert max(ids) < len(tokenizer)
                assert tokenizer.decode(ids) == row["text"], (lang, row["id"])
    # scripts the bundle lacks still encode, byte by byte
    for text in ("日本語のテキスト", "ภาษาไทย", "한국어", "ქართული", "emoji 🙂"):
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_tokenizer_trainer_rejects_bad_settings():
    with pytest.raises(ValueError, match="vocab_size"):
        demo.train_tokenizer(["a b c"], vocab_size=100)
    with pytest.raises(ValueError, match="no training texts"):
        demo.train_tokenizer([], vocab_size=1000)


def test_model_config_rejects_unknown_or_impossible_settings(tokenizer):
    with pytest.raises(ValueError, match="unknown model setting"):
        model_config(tokenizer, {"num_expert": 8})
    with pytest.raises(ValueError, match="num_experts_per_tok=32 exceeds num_experts=16"):
        model_config(tokenizer, {"num_experts_per_tok": 32})


@pytest.mark.slow
def test_model_loads_and_runs_a_padded_batch(tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
    cfg = model.config
    assert cfg.model_type == "qwen3_moe" and cfg.vocab_size == len(tokenizer)
    assert (cfg.num_experts, cfg.num_experts_per_tok) == (16, 4)
    moe = [m for m in model.modules() if type(m).__name__.endswith("SparseMoeBlock")]
    assert len(moe) == cfg.num_hidden_layers == 8
    assert MODEL.joinpath("model.safetensors").stat().st_size < 10 * 2**20

    texts = ["Hello world.", "Привет, мир! Ελληνικά, हिन्दी, العربية, 中文。"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert (batch["attention_mask"][0] == 0).any()  # the short one is left-padded
    with torch.no_grad():
        logits = model(**batch).logits
        alone = model(**tokenizer(texts[:1], return_tensors="pt")).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()
    # left padding + mask leaves the real tokens' outputs unchanged
    n = alone.shape[1]
    torch.testing.assert_close(logits[0, -n:], alone[0], atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_rebuild_is_byte_identical_to_the_committed_model(tmp_path):
    out = demo.build_model(tmp_path / "model", BUNDLE)
    committed = sorted(p.name for p in MODEL.iterdir())
    assert sorted(p.name for p in out.iterdir()) == committed
    for name in committed:
        assert (out / name).read_bytes() == (MODEL / name).read_bytes(), name
    assert not list(tmp_path.glob(".model.*"))  # no temporaries left behind
