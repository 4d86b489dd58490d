"""The demo corpus: gettext catalogues of installed packages -> parallel FLORES+ rows."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

from polyroute.data import load_records
from polyroute.demo.catalogues import clean, package_entries
from polyroute.demo.corpus import build_corpus

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "resources" / "demo" / "corpus"
LANGS = ["eng_Latn", "fra_Latn", "deu_Latn", "spa_Latn", "swh_Latn", "rus_Cyrl", "ell_Grek", "arb_Arab",
         "hin_Deva", "zho_Hans"]


def _mo(catalog: dict) -> bytes:
    """A compiled gettext catalogue (the GNU .mo layout), keys sorted as msgfmt writes them."""
    def enc(x):  # a plural entry is its forms joined by NUL
        return x.encode() if isinstance(x, str) else b"\x00".join(part.encode() for part in x)

    pairs = sorted((enc(k), enc(v)) for k, v in catalog.items())
    ids, strs = [k for k, _ in pairs], [v for _, v in pairs]
    n = len(pairs)
    start = 7 * 4 + 16 * n
    data, id_table, str_table = b"", [], []
    for blob, table in ((ids, id_table), (strs, str_table)):
        for b in blob:
            table.append((len(b), start + len(data)))
            data += b + b"\x00"
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    tables = b"".join(struct.pack("<2I", *e) for e in id_table + str_table)
    return header + tables + data


def _install(site: Path, name: str, catalogues: dict[str, dict]) -> None:
    """A distribution `name` 1.0 in `site`, shipping one .mo per locale (listed in its RECORD)."""
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\nLicense-Expression: MIT\n")
    (dist / "LICENSE").write_text(f"MIT licence of {name}\n")
    record = [f"{dist.name}/LICENSE,,"]
    for locale, catalog in catalogues.items():
        rel = f"{name}/locale/{locale}/LC_MESSAGES/{name}.mo"
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_bytes(_mo({"": "Content-Type: text/plain; charset=UTF-8\n", **catalog}))
        record.append(f"{rel},,")
    (dist / "RECORD").write_text("\n".join(record) + "\n")


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_entries_skip_plurals_untranslated_short_and_strip_context(site):
    _install(site, "fakeapp", {
        "fr": {"Save  the\nfile": "Enregistrer le fichier", "menu\x04Open file": "Ouvrir le fichier",
               "Untranslated": "Untranslated", "OK": "Ok", ("One item", "Many items"): ("Un", "Des"),
               "Delete": ""},
        "hi": {"Delete file": "फ़ाइल हटाएँ"},
        "hi_IN": {"Delete file": "फ़ाइल मिटाएँ", "Close": "बंद करें"},
    })
    entries = package_entries("fakeapp", ["fra_Latn", "hin_Deva"])
    got = {(e.language, e.source): e.text for e in entries}
    assert got == {("fra_Latn", "Open file"): "Ouvrir le fichier",
                   ("fra_Latn", "Save the file"): "Enregistrer le fichier",
                   ("hin_Deva", "Close"): "बंद करें",
                   ("hin_Deva", "Delete file"): "फ़ाइल हटाएँ"}  # `hi` is preferred over `hi_IN`
    assert all(e.version == "1.0" and e.catalogue.endswith(".mo") for e in entries)


def test_missing_package_or_language_is_a_one_line_error(site):
    with pytest.raises(ValueError, match="not installed"):
        package_entries("no-such-package-here", ["fra_Latn"])
    _install(site, "fakeapp", {"fr": {"Save file": "Enregistrer"}})
    with pytest.raises(ValueError, match="no gettext locale known"):
        package_entries("fakeapp", ["kor_Hang"])
    with pytest.raises(ValueError, match="ships no .mo catalogue"):
        package_entries("fakeapp", ["deu_Latn"])


def test_clean_normalises_to_nfc_and_single_spaces():
    assert clean(" e\u0301te\u0301 \n\t ok ") == "\u00e9t\u00e9 ok"


def test_built_corpus_is_parallel_with_a_clean_heldout_split(site, tmp_path):
    words = [f"Item number {w}" for w in ("one", "two", "three", "four", "five", "six")]
    _install(site, "appa", {"fr": {w: f"fr {w}" for w in words}, "sw": {w: f"sw {w}" for w in words[:4]}})
    _install(site, "appb", {"fr": {words[0]: "other", "Only in b": "Seulement b"}})
    out = tmp_path / "corpus"
    build_corpus(out, ["eng_Latn", "fra_Latn", "swh_Latn"], packages=["appa", "appb"], heldout=2, seed=1)
    frames = {(lang, split): load_records("flores_plus", lang, split=split, local_dir=out)
              for lang in ("eng_Latn", "fra_Latn", "swh_Latn") for split in ("dev", "devtest")}
    dev_ids = {lang: list(frames[lang, "dev"]["parallel_id"].str.split("-").str[1]) for lang in ("eng_Latn", "fra_Latn", "swh_Latn")}
    assert dev_ids["eng_Latn"] == dev_ids["fra_Latn"] == dev_ids["swh_Latn"] and len(dev_ids["eng_Latn"]) == 2
    for lang in ("eng_Latn", "fra_Latn", "swh_Latn"):
        test_ids = set(frames[lang, "devtest"]["parallel_id"].str.split("-").str[1])
        assert not test_ids & set(dev_ids[lang])  # held-out strings are nowhere in the training pool
    assert len(frames["eng_Latn", "devtest"]) == 7 - 2 and len(frames["swh_Latn", "devtest"]) == 2
    fra = dict(zip(frames["fra_Latn", "devtest"]["text"], frames["fra_Latn", "devtest"]["id"], strict=True))
    assert "other" not in fra and "Seulement b" in fra  # the first package's translation wins
    rows = [json.loads(x) for x in (out / "flores_plus/swh_Latn/dev.jsonl").read_text().splitlines()]
    assert rows[0]["url"].startswith("pkg:pypi/appa@1.0#appa/locale/sw/") and rows[0]["glottocode"] == "swah1253"
    assert (out / "licences" / "appb-LICENSE").read_text() == "MIT licence of appb\n"
    manifest = json.loads((out / "corpus.json").read_text())
    assert manifest["packages"][0] == {"name": "appa", "version": "1.0", "licence": "MIT"}
    assert manifest["languages"]["swh_Latn"]["dev"]["strings"] == 2
    with pytest.raises(ValueError, match="only 4 strings are translated into every language"):
        build_corpus(tmp_path / "again", ["eng_Latn", "fra_Latn", "swh_Latn"], packages=["appa"], heldout=5)
    with pytest.raises(ValueError, match="must include eng_Latn"):
        build_corpus(tmp_path / "again", ["fra_Latn"], packages=["appa"])


def test_shipped_corpus_is_parallel_imbalanced_and_in_flores_schema():
    dev = {lang: load_records("flores_plus", lang, split="dev", local_dir=CORPUS) for lang in LANGS}
    ids = {lang: list(frame["parallel_id"]) for lang, frame in dev.items()}
    assert all(v == ids["eng_Latn"] for v in ids.values()) and len(ids["eng_Latn"]) == 100
    sizes = {lang: len(load_records("flores_plus", lang, split="devtest", local_dir=CORPUS)) for lang in LANGS}
    assert min(sizes, key=sizes.get) == "swh_Latn"  # the weak target has the least text
    assert sizes["eng_Latn"] > 5 * sizes["swh_Latn"]


def test_shipped_corpus_rebuilds_byte_identically_from_the_pinned_packages(tmp_path):
    for module in ("django", "sphinx", "wagtail"):  # the [demo] extra
        pytest.importorskip(module, reason="pip install -e '.[demo]' to check the corpus rebuild")
    build_corpus(tmp_path / "corpus", LANGS)
    fresh = sorted(p.relative_to(tmp_path / "corpus") for p in (tmp_path / "corpus").rglob("*") if p.is_file())
    assert fresh == sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file())
    for rel in fresh:
        assert (tmp_path / "corpus" / rel).read_bytes() == (CORPUS / rel).read_bytes(), rel
