"""The demo's data bundle: hand-written parallel text and task items in each real dataset's schema.

``build_bundle(source_dir, out_dir)`` turns the hand-written sources under
``resources/demo/source/`` (the single copy of the demo text) into files in each real dataset's
schema and layout, as if downloaded: ``<out>/<dataset>/<hf_config>/<split>.jsonl`` (see
`polyroute.data` for the layout and `polyroute.data.registry` for the schemas). Rebuilding gives
byte-identical files.

Source layout (``resources/demo/source``), tab-separated, ``#`` lines are comments:

- ``articles.tsv``: article number, domain, topic, url, has_image, has_hyperlink. Each article is
  ``SENTENCES_PER_ARTICLE`` consecutive FLORES sentences.
- ``flores/<FLORES code>.txt``: one sentence per line; line ``i`` of every language is a translation
  of the same sentence. The first ``DEV_SIZE`` lines form ``dev``, the rest ``devtest``.
- ``belebele/<code>.tsv``: article, question_number, correct_answer_num, question, answer1..4
  (the passage is that article's sentences).
- ``mgsm/<code>.tsv``, ``polymath/<code>.tsv``: question, answer (parallel by row).
- ``tydiqa/<code>.tsv``: article (the context), title, question, gold answer (a span of the context).
- ``multiblimp/<code>.tsv``: grammatical sentence, ungrammatical sentence, phenomenon,
  grammatical feature, ungrammatical feature.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyroute import languages
from polyroute.atomic import atomic_write_bytes

__all__ = [
    "DEV_SIZE",
    "SENTENCES_PER_ARTICLE",
    "GLOTTOCODES",
    "Article",
    "read_articles",
    "read_flores",
    "source_languages",
    "write_jsonl",
    "build_bundle",
]

DEV_SIZE = 100  # FLORES-like split: the first 100 sentences are `dev`, the rest `devtest`
SENTENCES_PER_ARTICLE = 5
FLORES_VERSION = "2.0"  # `last_updated` of every FLORES+ row
BELEBELE_DS = "2023-05-03"  # `ds` column of Belebele rows (its release date)
POLYMATH_SPLIT = "low"

# Glottolog codes of the FLORES+ configs in the bundle (FLORES+ carries a `glottocode` column).
GLOTTOCODES = {
    "eng": "stan1293", "fra": "stan1290", "deu": "stan1295", "spa": "stan1288",
    "swh": "swah1253", "rus": "russ1263", "ell": "mode1248", "arb": "stan1318",
    "hin": "hind1269", "cmn": "beij1234",
}



# --- reading the sources ----------------------------------------------------------------------

@dataclass(frozen=True)
class Article:
    """A run of consecutive FLORES sentences sharing a source page (url, domain, topic)."""

    number: int
    domain: str
    topic: str
    url: str
    has_image: bool
    has_hyperlink: bool

    def sentence_indices(self) -> range:
        """0-based line numbers of this article's sentences in ``flores/<code>.txt``."""
        start = (self.number - 1) * SENTENCES_PER_ARTICLE
        return range(start, start + SENTENCES_PER_ARTICLE)


def _rows(path: Path, ncols: int) -> list[list[str]]:
    """Tab-separated rows of `path` (comments and blank lines skipped), each with `ncols` fields."""
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != ncols:
            raise ValueError(f"{path}:{lineno}: expected {ncols} tab-separated fields, got {len(fields)}")
        out.append([f.strip() for f in fields])
    return out


def read_articles(source_dir: str | os.PathLike) -> list[Article]:
    """The articles of ``articles.tsv``, numbered 1..n in order."""
    rows = _rows(Path(source_dir) / "articles.tsv", 6)
    arts = [Article(int(n), d, t, u, img == "1", link == "1") for n, d, t, u, img, link in rows]
    if [a.number for a in arts] != list(range(1, len(arts) + 1)):
        raise ValueError(f"{source_dir}/articles.tsv: articles must be numbered 1..{len(arts)} in order")
    return arts


def source_languages(source_dir: str | os.PathLike) -> list[str]:
    """FLORES codes with a ``flores/<code>.txt`` source, sorted."""
    codes = sorted(p.stem for p in (Path(source_dir) / "flores").glob("*.txt"))
    if not codes:
        raise ValueError(f"no flores/<code>.txt sources under {source_dir}")
    return [languages.validate_code(c) for c in codes]


def read_flores(source_dir: str | os.PathLike, language: str) -> list[str]:
    """All sentences of `language`, in parallel order (line i = sentence i in every language)."""
    path = Path(source_dir) / "flores" / f"{language}.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    if any(not s.strip() for s in lines):
        raise ValueError(f"{path}: blank line {[i + 1 for i, s in enumerate(lines) if not s.strip()][0]}")
    return [s.strip() for s in lines]


def _joiner(language: str) -> str:
    # Scripts written without spaces between sentences.
    return "" if languages.script(language) in {"Hans", "Hant", "Jpan"} else " "


def _passage(sentences: Sequence[str], article: Article, language: str) -> str:
    return _joiner(language).join(sentences[i] for i in article.sentence_indices())


# --- writing the bundle -----------------------------------------------------------------------

def write_jsonl(path: Path, rows: Iterable[dict]) -> Path:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_bytes(path, data.encode("utf-8"))
    return path


def _flores_files(src: Path, out: Path, langs: list[str], arts: list[Article]) -> list[Path]:
    n = len(arts) * SENTENCES_PER_ARTICLE
    if n <= DEV_SIZE:
        raise ValueError(f"{src}/articles.tsv: {n} sentences leave nothing for devtest (dev has {DEV_SIZE})")
    article_of = {i: a for a in arts for i in a.sentence_indices()}
    written = []
    for lang in langs:
        sents = read_flores(src, lang)
        if len(sents) != n:
            raise ValueError(f"{src}/flores/{lang}.txt has {len(sents)} sentences, expected {n}")
        config = languages.to_dataset_code(lang, "flores_plus")
        iso3, script = config.split("_")
        for split, lo, hi in (("dev", 0, DEV_SIZE), ("devtest", DEV_SIZE, n)):
            rows = []
            for i in range(lo, hi):
                a = article_of[i]
                rows.append({"id": i - lo + 1, "iso_639_3": iso3, "iso_15924": script,
                             "glottocode": GLOTTOCODES[iso3], "text": sents[i], "url": a.url,
                             "domain": a.domain, "topic": a.topic, "has_image": a.has_image,
                             "has_hyperlink": a.has_hyperlink, "last_updated": FLORES_VERSION})
            written.append(write_jsonl(out / "flores_plus" / config / f"{split}.jsonl", rows))
    return written


def _task_languages(src: Path, task: str, dataset: str) -> list[str]:
    langs = sorted(p.stem for p in (src / task).glob("*.tsv"))
    for lang in langs:
        languages.to_dataset_code(lang, dataset)  # LanguageNotInDataset names the offender
    return langs


def _check_parallel(task: str, keys: dict[str, list]) -> None:
    """Rows of a parallel task must agree across languages on their language-independent keys."""
    ref_lang, ref = next(iter(keys.items()))
    for lang, k in keys.items():
        if k != ref:
            raise ValueError(f"{task}: {lang} disagrees with {ref_lang} on row keys/answers: {k} != {ref}")


def _parallel_files(src: Path, out: Path, task: str, split: str,
                    rows_of: Callable[[str, str], list[dict]], key: Callable[[dict], Any]) -> list[Path]:
    """One file per language of a parallel task; `rows_of(language, config)` builds its rows, which
    must agree across languages on `key` (the language-independent part: links, answers)."""
    written, keys = [], {}
    for lang in _task_languages(src, task, task):
        config = languages.to_dataset_code(lang, task)
        rows = rows_of(lang, config)
        keys[lang] = [key(r) for r in rows]
        written.append(write_jsonl(out / task / config / f"{split}.jsonl", rows))
    _check_parallel(task, keys)
    return written


def _belebele_files(src: Path, out: Path, arts: list[Article]) -> list[Path]:
    def rows_of(lang: str, config: str) -> list[dict]:
        sents = read_flores(src, lang)
        rows = []
        for art, qn, correct, question, *answers in _rows(src / "belebele" / f"{lang}.tsv", 8):
            if correct not in {"1", "2", "3", "4"}:
                raise ValueError(f"belebele/{lang}.tsv: correct_answer_num {correct!r} not in 1..4")
            a = arts[int(art) - 1]
            rows.append({"link": a.url, "question_number": int(qn),
                         "flores_passage": _passage(sents, a, lang), "question": question,
                         **{f"mc_answer{i}": ans for i, ans in enumerate(answers, 1)},
                         "correct_answer_num": correct, "dialect": lang, "ds": BELEBELE_DS})
        return rows

    return _parallel_files(src, out, "belebele", "test", rows_of,
                           key=lambda r: (r["link"], r["question_number"], r["correct_answer_num"]))


def _mgsm_files(src: Path, out: Path) -> list[Path]:
    def rows_of(lang: str, config: str) -> list[dict]:
        return [{"question": q, "answer": None, "answer_number": int(ans), "equation_solution": None}
                for q, ans in _rows(src / "mgsm" / f"{lang}.tsv", 2)]

    return _parallel_files(src, out, "mgsm", "test", rows_of, key=lambda r: r["answer_number"])


def _polymath_files(src: Path, out: Path) -> list[Path]:
    def rows_of(lang: str, config: str) -> list[dict]:
        return [{"id": f"{POLYMATH_SPLIT}-{config}-{i}", "question": q, "answer": ans}
                for i, (q, ans) in enumerate(_rows(src / "polymath" / f"{lang}.tsv", 2))]

    return _parallel_files(src, out, "polymath", POLYMATH_SPLIT, rows_of, key=lambda r: r["answer"])


def _tydiqa_id(prefix: str, article: int, question: str) -> str:
    # TyDiQA ids are `<language>-<19-digit example id>-<annotation>`; ours are stable hashes.
    digest = hashlib.sha256(f"{prefix}/{article}/{question}".encode()).hexdigest()
    return f"{prefix}-{int(digest[:15], 16) % 10**19:019d}-0"


def _tydiqa_files(src: Path, out: Path, arts: list[Article]) -> list[Path]:
    rows = []
    for lang in _task_languages(src, "tydiqa", "tydiqa"):
        sents = read_flores(src, lang)
        prefix = languages.to_dataset_code(lang, "tydiqa")
        for art, title, question, answer in _rows(src / "tydiqa" / f"{lang}.tsv", 4):
            context = _passage(sents, arts[int(art) - 1], lang)
            start = context.find(answer)
            if start < 0:
                raise ValueError(f"tydiqa/{lang}.tsv: answer {answer!r} is not a span of article {art}")
            rows.append({"id": _tydiqa_id(prefix, int(art), question), "title": title,
                         "context": context, "question": question,
                         "answers": {"text": [answer], "answer_start": [start]}})
    return [write_jsonl(out / "tydiqa" / "secondary_task" / "validation.jsonl", rows)]


def _multiblimp_files(src: Path, out: Path) -> list[Path]:
    written = []
    for lang in _task_languages(src, "multiblimp", "multiblimp"):
        iso3 = languages.to_dataset_code(lang, "multiblimp")
        rows = []
        for sen, wrong, phen, good_feat, bad_feat in _rows(src / "multiblimp" / f"{lang}.tsv", 5):
            a, b = sen.split(), wrong.split()
            diff = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
            if len(a) != len(b) or len(diff) != 1:
                raise ValueError(f"multiblimp/{lang}.tsv: {sen!r} / {wrong!r} must differ in exactly one word")
            i = diff[0]
            rows.append({"sen": sen, "verb": a[i], "verb_idx": i, "wrong_sen": wrong,
                         "wrong_verb": b[i], "phenomenon": phen, "lang": iso3,
                         "grammatical_feature": good_feat, "ungrammatical_feature": bad_feat})
        written.append(write_jsonl(out / "multiblimp" / iso3 / "train.jsonl", rows))
    return written


def build_bundle(source_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write every dataset of the demo bundle from `source_dir` into `out_dir`; return the files.

    Files are written atomically; the sources are fully checked (parallel ids and answers agree
    across languages, QA answers are spans, minimal pairs differ in one word) as they are read.
    """
    src, out = Path(source_dir), Path(out_dir)
    if not (src / "articles.tsv").is_file():
        raise ValueError(f"source_dir {str(src)!r} has no articles.tsv (expected resources/demo/source)")
    arts = read_articles(src)
    langs = source_languages(src)
    return (_flores_files(src, out, langs, arts) + _belebele_files(src, out, arts)
            + _mgsm_files(src, out) + _polymath_files(src, out) + _tydiqa_files(src, out, arts)
            + _multiblimp_files(src, out))
