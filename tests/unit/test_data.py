"""polyroute.data: registry, mapping of each real source schema to records, local and hub paths."""

import json
from pathlib import Path

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest

from polyroute.errors import UserError
from polyroute import data as D
from polyroute import languages as L
from polyroute.data import records as R

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "datasets"


def load(name, language, **kw):
    return D.load_records(name, language, local_dir=FIX, **kw)


@pytest.fixture
def no_load(monkeypatch):
    """Fail the test if anything reaches datasets.load_dataset (errors must come first)."""
    def boom(*a, **k):
        raise AssertionError(f"load_dataset called with {a} {k}")
    monkeypatch.setattr(datasets, "load_dataset", boom)


# --- registry ----------------------------------------------------------------------------------

def test_registry_covers_the_six_datasets():
    assert set(D.DATASETS) == {"flores_plus", "belebele", "mgsm", "tydiqa", "polymath", "multiblimp"}
    for name, spec in D.DATASETS.items():
        assert spec.name == name
        assert spec.kind in R.KIND_COLUMNS
        assert spec.default_split in spec.splits
        assert set(spec.languages) == set(L.dataset_languages(name))
    assert D.get_spec("flores_plus").gated
    assert D.get_spec("tydiqa").hf_config("swh_Latn") == "secondary_task"
    assert D.get_spec("flores_plus").hf_config("zho_Hans") == "cmn_Hans"
    assert D.get_spec("mgsm").hf_config("swh_Latn") == "sw"


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match=r"unknown dataset 'xnli' \(known: belebele, flores_plus"):
        D.get_spec("xnli")
    with pytest.raises(ValueError, match="dataset 'mgsm' has no split 'dev'"):
        D.get_spec("mgsm").check_split("dev")
    assert D.get_spec("mgsm").check_split(None) == "test"


def test_local_path_mirrors_hub_layout():
    assert D.local_path("/x", D.get_spec("flores_plus"), "zho_Hans", "dev") == Path("/x/flores_plus/cmn_Hans/dev.jsonl")
    assert D.local_path("/x", D.get_spec("tydiqa"), "fin_Latn", "validation") == Path(
        "/x/tydiqa/secondary_task/validation.jsonl")
    assert D.local_path("/x", D.get_spec("multiblimp"), "pes_Arab", "train") == Path("/x/multiblimp/fas/train.jsonl")


# --- mapping each schema ------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, language, n",
    [("flores_plus", "eng_Latn", 3), ("belebele", "swh_Latn", 2), ("mgsm", "zho_Hans", 3),
     ("tydiqa", "fin_Latn", 2), ("polymath", "swh_Latn", 3), ("multiblimp", "eng_Latn", 3)],
)
def test_columns_and_language(name, language, n):
    df = load(name, language)
    assert list(df.columns) == list(R.columns(D.get_spec(name).kind))
    assert len(df) == n
    assert (df["language"] == language).all()
    assert df["id"].is_unique
    assert all(isinstance(p, str) for p in df["parallel_id"])


def test_flores_text_and_parallel_ids_across_languages():
    eng = load("flores_plus", "eng_Latn")
    zho = load("flores_plus", "zho_Hans")  # read from the cmn_Hans config
    assert eng["text"][0] == "The river rose after three days of rain."
    assert zho["text"][1] == "博物馆早上九点开门。"
    assert list(eng["parallel_id"]) == ["dev-1", "dev-2", "dev-3"]
    assert list(eng["parallel_id"]) == list(zho["parallel_id"])
    dt = load("flores_plus", "eng_Latn", split="devtest")
    assert set(dt["parallel_id"]).isdisjoint(eng["parallel_id"])  # splits never collide


def test_belebele_choices_and_zero_based_answer():
    df = load("belebele", "eng_Latn")
    assert df["choices"][0] == ["The river rose", "It was winter", "The museum opened", "Birds flew south"]
    assert list(df["answer"]) == [0, 2]  # correct_answer_num "1", "3"
    assert df["answer"].dtype == "int64"
    assert df["context"][0].startswith("The river rose")
    assert df["parallel_id"][1] == "https://en.wikibooks.org/wiki/Example/Rain#2"
    assert list(df["parallel_id"]) == list(load("belebele", "zho_Hans")["parallel_id"])


def test_mgsm_answer_as_text_and_cot_only_in_train():
    test = load("mgsm", "swh_Latn")
    assert list(test["answer"]) == ["7", "60", "12"]
    assert (test["cot"] == "").all()
    train = load("mgsm", "eng_Latn", split="train")
    assert train["cot"][0] == "Step-by-Step Answer: 3 + 4 = 7. The answer is 7."
    assert list(train["parallel_id"]) == ["train-0", "train-1"]
    assert list(test["parallel_id"]) == list(load("mgsm", "eng_Latn")["parallel_id"])


def test_tydiqa_filters_shared_file_by_id_prefix():
    fin = load("tydiqa", "fin_Latn")
    assert all(i.startswith("finnish-") for i in fin["id"])
    assert fin["answers"][0] == ["Helsinki"]
    assert (fin["parallel_id"] == "").all()
    swh = load("tydiqa", "swh_Latn")
    assert len(swh) == 2 and swh["question"][0] == "Mji mkuu wa Kenya ni upi?"
    # max_items counts the language's own rows, not the file's
    one = load("tydiqa", "swh_Latn", max_items=1)
    assert list(one["id"]) == [swh["id"][0]]


def test_polymath_answer_kept_as_written():
    df = load("polymath", "zho_Hans", split="low")
    assert list(df["answer"]) == ["1024", "\\frac{5}{6}", "7"]
    assert list(df["parallel_id"]) == list(load("polymath", "eng_Latn")["parallel_id"])
    top = load("polymath", "eng_Latn", split="top")
    assert set(top["parallel_id"]).isdisjoint(df["parallel_id"])


def test_multiblimp_pairs():
    df = load("multiblimp", "fra_Latn")
    assert df["good"][0] == "Les chiens aboient fort."
    assert df["bad"][0] == "Les chiens aboie fort."
    assert list(df["phenomenon"]) == ["SV-#", "SV-#"]
    assert (df["parallel_id"] == "").all()


@pytest.mark.parametrize("name, language", [("flores_plus", "swh_Latn"), ("mgsm", "eng_Latn")])
def test_max_items_keeps_first_rows(name, language):
    full = load(name, language)
    two = load(name, language, max_items=2)
    pd.testing.assert_frame_equal(two, full.head(2))


# --- errors before any reading --------------------------------------------------------------------

def test_language_not_in_dataset_before_download(no_load):
    with pytest.raises(L.LanguageNotInDataset, match=r"'fin_Latn' is not in dataset 'mgsm'; it has: ben_Beng"):
        D.load_records("mgsm", "fin_Latn")
    with pytest.raises(ValueError, match="unknown language code 'english'"):
        D.load_records("tydiqa", "english")
    with pytest.raises(ValueError, match="unknown dataset 'xnli'"):
        D.load_records("xnli", "eng_Latn")
    with pytest.raises(ValueError, match="has no split 'validation'"):
        D.load_records("mgsm", "eng_Latn", split="validation")
    with pytest.raises(ValueError, match="max_items must be a positive integer"):
        D.load_records("mgsm", "eng_Latn", max_items=0)


def test_missing_local_file_names_path(tmp_path):
    with pytest.raises(UserError, match=r"mgsm/sw/test\.jsonl"):
        D.load_records("mgsm", "swh_Latn", local_dir=tmp_path)


def test_schema_drift_names_missing_field(tmp_path):
    p = tmp_path / "belebele" / "eng_Latn" / "test.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"link": "l", "question_number": 1, "question": "q"}) + "\n")
    with pytest.raises(ValueError, match="belebele row lacks field.*flores_passage"):
        D.load_records("belebele", "eng_Latn", local_dir=tmp_path)


def test_bad_belebele_answer_rejected(tmp_path):
    row = json.loads((FIX / "belebele" / "eng_Latn" / "test.jsonl").read_text().splitlines()[0])
    row["correct_answer_num"] = "5"
    p = tmp_path / "belebele" / "eng_Latn" / "test.jsonl"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="correct_answer_num '5' not in 1..4"):
        D.load_records("belebele", "eng_Latn", local_dir=tmp_path)


def test_to_frame_rejects_duplicate_ids_and_wrong_keys():
    rec = {"id": "a", "language": "eng_Latn", "parallel_id": "", "text": "x"}
    with pytest.raises(ValueError, match="duplicate record id 'a'"):
        R.to_frame([rec, dict(rec)], R.PARALLEL_TEXT)
    with pytest.raises(ValueError, match="expected"):
        R.to_frame([{**rec, "extra": 1}], R.PARALLEL_TEXT)
    with pytest.raises(ValueError, match="unknown record kind 'essay'"):
        R.columns("essay")


# --- hub path (no network: load_dataset is replaced) ----------------------------------------------

def _fake_hub(monkeypatch, rows):
    calls = []

    def fake(path, name=None, *, split=None, token=None, **kw):
        calls.append({"path": path, "name": name, "split": split, "token": token, **kw})
        return datasets.Dataset.from_list(rows)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    return calls


def _fixture_rows(rel):
    return [json.loads(line) for line in (FIX / rel).read_text().splitlines()]


def test_gated_flores_passes_hf_token(monkeypatch):
    calls = _fake_hub(monkeypatch, _fixture_rows("flores_plus/cmn_Hans/devtest.jsonl"))
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    df = D.load_records("flores_plus", "zho_Hans", split="devtest")
    assert calls == [{"path": "openlanguagedata/flores_plus", "name": "cmn_Hans", "split": "devtest",
                      "token": "hf_secret"}]
    assert list(df["parallel_id"]) == ["devtest-11", "devtest-12", "devtest-13"]
    D.load_records("flores_plus", "zho_Hans", token="explicit")
    assert calls[-1]["token"] == "explicit" and calls[-1]["split"] == "dev"


def test_hub_tydiqa_uses_shared_config(monkeypatch):
    calls = _fake_hub(monkeypatch, _fixture_rows("tydiqa/secondary_task/validation.jsonl"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    df = D.load_records("tydiqa", "eng_Latn")
    assert calls[0]["path"] == "google-research-datasets/tydiqa"
    assert calls[0]["name"] == "secondary_task" and calls[0]["split"] == "validation"
    assert calls[0]["token"] is None
    assert list(df["answers"]) == [["Nairobi"], ["northeastern Africa"]]


def test_hub_mgsm_float_answer_number(monkeypatch):
    rows = [{"question": "q", "answer": None, "answer_number": 12.0, "equation_solution": ""},
            {"question": "r", "answer": None, "answer_number": 2.5, "equation_solution": ""}]
    _fake_hub(monkeypatch, rows)
    assert list(D.load_records("mgsm", "eng_Latn")["answer"]) == ["12", "2.5"]


# --- writing --------------------------------------------------------------------------------------

def test_download_writes_parquet_with_provenance(tmp_path):
    out = D.download("belebele", "swh_Latn", tmp_path / "belebele" / "swh_Latn.parquet", local_dir=FIX)
    assert out == tmp_path / "belebele" / "swh_Latn.parquet"
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back.assign(choices=back["choices"].map(list)), load("belebele", "swh_Latn"))
    meta = json.loads(pq.read_schema(out).metadata[b"polyroute"])
    assert meta["dataset"] == "belebele" and meta["config"] == "swh_Latn" and meta["split"] == "test"
    assert meta["source"] == "local" and meta["rows"] == 2
    assert [p.name for p in out.parent.iterdir()] == ["swh_Latn.parquet"]  # no temp left


def test_download_rejects_non_parquet_path(tmp_path, no_load):
    with pytest.raises(ValueError, match="must end in .parquet"):
        D.download("mgsm", "eng_Latn", tmp_path / "x.csv")


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    import os

    target = tmp_path / "mgsm" / "eng_Latn.parquet"
    frame = load("mgsm", "eng_Latn")

    def fail_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        D.write_parquet_atomic(frame, target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []
    monkeypatch.undo()

    # an existing good file survives a failing rewrite untouched
    D.write_parquet_atomic(frame, target)
    before = target.read_bytes()
    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError):
        D.write_parquet_atomic(frame.head(1), target)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["eng_Latn.parquet"]


def test_unserialisable_frame_touches_nothing(tmp_path):
    target = tmp_path / "bad.parquet"
    frame = pd.DataFrame({"id": ["a"], "x": [object()]})
    with pytest.raises(Exception):
        D.write_parquet_atomic(frame, target)
    assert list(tmp_path.iterdir()) == []


def test_data_package_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, polyroute.data, polyroute.languages; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
