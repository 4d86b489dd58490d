"""The demo corpus: human translations from installed packages' gettext catalogues, parallel
across languages, written as FLORES+ rows so `polyroute.data` reads it like the real dataset.

Every English source string (msgid) gets one integer ``id``, shared by its translations in every
language, so the loaders give the same ``parallel_id`` to translations. Strings translated into
every language are the candidates for the held-out split: ``heldout`` of them, drawn with
`seed`, form ``dev`` in every language (parallel, never pretrained on); each language's other
strings form its ``devtest`` (the training pool; how much of it the pretraining sees is the
pretraining mix's business, `polyroute.demo.pretrain`). Layout::

    <out>/flores_plus/<FLORES+ config>/{dev,devtest}.jsonl
    <out>/corpus.json        packages (name, version, licence), counts per language and split
    <out>/licences/          each package's licence files, as it ships them

    load_records("flores_plus", "swh_Latn", split="dev", local_dir="resources/demo/corpus")
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from polyroute import languages
from polyroute.atomic import atomic_write_bytes
from polyroute.demo.bundle import GLOTTOCODES, write_jsonl
from polyroute.demo.catalogues import Entry, package_entries

__all__ = ["PACKAGES", "REFERENCE", "build_corpus"]

# Catalogues in precedence order (a string two packages translate takes the first's translation).
PACKAGES = ("Django", "Sphinx", "wagtail")
REFERENCE = "eng_Latn"  # the catalogues' source language
DOMAIN = "software localisation"


def _licence(distribution: str) -> str:
    meta = metadata.distribution(distribution).metadata
    return meta.get("License-Expression") or meta.get("License") or "see the package's metadata"


def _licence_files(distribution: str, out: Path) -> list[Path]:
    """Copy the distribution's licence texts (BSD licences must travel with the text) to ``out/licences``."""
    dist = metadata.distribution(distribution)
    name = dist.metadata["Name"]
    written = []
    for f in dist.files or ():
        path = Path(str(f))
        if path.parts[0].endswith(".dist-info") and path.name.upper().startswith("LICENSE"):
            target = out / "licences" / f"{name}-{path.name}"
            atomic_write_bytes(target, dist.locate_file(f).read_bytes())
            written.append(target)
    if not written:
        raise ValueError(f"package {name!r} ships no LICENSE file in its metadata")
    return written


def _row(lang: str, pid: int, text: str, entry: Entry) -> dict:
    iso3, script = languages.to_dataset_code(lang, "flores_plus").split("_")
    url = f"pkg:pypi/{entry.package.lower()}@{entry.version}#{entry.catalogue}"
    return {"id": pid, "iso_639_3": iso3, "iso_15924": script, "glottocode": GLOTTOCODES[iso3],
            "text": text, "url": url, "domain": DOMAIN, "topic": entry.package.lower(),
            "has_image": False, "has_hyperlink": False, "last_updated": entry.version}


def build_corpus(out_dir: str | os.PathLike, langs: Sequence[str], *, packages: Sequence[str] = PACKAGES,
                 heldout: int = 100, seed: int = 0) -> list[Path]:
    """Extract the catalogues of `packages` into the corpus under `out_dir`; return the files.

    `langs` are FLORES codes and must include English, the source language. Rebuilding from the
    same package versions gives byte-identical files.
    """
    langs = sorted(languages.validate_code(code) for code in langs)  # the order never changes the corpus
    if REFERENCE not in langs:
        raise ValueError(f"langs must include {REFERENCE}, the catalogues' source language")
    if heldout < 1:
        raise ValueError(f"heldout must be >= 1, got {heldout}")
    targets = [code for code in langs if code != REFERENCE]
    chosen: dict[str, dict[str, Entry]] = {code: {} for code in targets}
    for package in packages:
        for entry in package_entries(package, targets):
            chosen[entry.language].setdefault(entry.source, entry)
    for code, entries in chosen.items():
        if not entries:
            raise ValueError(f"no catalogue of {list(packages)} translates into {code}")
    english: dict[str, Entry] = {}
    for code in targets:
        for source, entry in chosen[code].items():
            english.setdefault(source, entry)
    ids = {source: i for i, source in enumerate(sorted(english), 1)}
    everywhere = sorted(set.intersection(*(set(chosen[code]) for code in targets)))
    if len(everywhere) < heldout:
        raise ValueError(f"only {len(everywhere)} strings are translated into every language; "
                         f"heldout={heldout} is too many")
    held = {ids[source] for source in random.Random(seed).sample(everywhere, heldout)}

    texts = {REFERENCE: {s: (s, e) for s, e in english.items()}}
    texts |= {code: {s: (e.text, e) for s, e in chosen[code].items()} for code in targets}
    out, written, counts = Path(out_dir), [], {}
    for code in langs:
        config = languages.to_dataset_code(code, "flores_plus")
        rows = sorted((_row(code, ids[s], text, e) for s, (text, e) in texts[code].items()),
                      key=lambda r: r["id"])
        splits = {"dev": [r for r in rows if r["id"] in held],
                  "devtest": [r for r in rows if r["id"] not in held]}
        for split, split_rows in splits.items():
            written.append(write_jsonl(out / "flores_plus" / config / f"{split}.jsonl", split_rows))
        counts[code] = {split: {"strings": len(r), "chars": sum(len(x["text"]) for x in r)}
                        for split, r in splits.items()}
    manifest = {"packages": [{"name": metadata.distribution(p).metadata["Name"],
                              "version": metadata.version(p), "licence": _licence(p)} for p in packages],
                "reference": REFERENCE, "heldout": heldout, "seed": seed, "languages": counts}
    path = out / "corpus.json"
    atomic_write_bytes(path, (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return written + [path] + [f for p in packages for f in _licence_files(p, out)]
