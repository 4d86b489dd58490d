"""Human translations shipped as gettext catalogues (``LC_MESSAGES/*.mo``) by installed packages.

A catalogue maps an English source string (msgid) to its translation (msgstr). Read from the
installed distribution (`importlib.metadata`), so the text is exactly what the pinned package ships.
"""

from __future__ import annotations

import gettext
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import PurePosixPath

__all__ = ["LOCALES", "Entry", "clean", "package_entries"]

# gettext locale directory names that hold each FLORES language (first match wins per msgid).
LOCALES: Mapping[str, tuple[str, ...]] = {
    "fra_Latn": ("fr",), "deu_Latn": ("de",), "spa_Latn": ("es",), "swh_Latn": ("sw",),
    "rus_Cyrl": ("ru",), "ell_Grek": ("el",), "arb_Arab": ("ar",), "hin_Deva": ("hi", "hi_IN"),
    "zho_Hans": ("zh_Hans", "zh_CN"),
}
_CONTEXT_SEP = "\x04"  # msgctxt and msgid are joined by EOT in a compiled catalogue
_MIN_LETTERS = 3


@dataclass(frozen=True)
class Entry:
    """One translated string: its English source, the translation, and where it comes from."""

    language: str
    source: str
    text: str
    package: str
    version: str
    catalogue: str  # the .mo path inside the distribution


def clean(text: str) -> str:
    """NFC with runs of whitespace (newlines included) made one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def _locale_of(path: PurePosixPath) -> str | None:
    parts = path.parts
    if "LC_MESSAGES" not in parts or path.suffix != ".mo":
        return None
    i = parts.index("LC_MESSAGES")
    return parts[i - 1] if i > 0 else None


def _pairs(data: bytes) -> Iterator[tuple[str, str]]:
    import io

    catalog = gettext.GNUTranslations(io.BytesIO(data))._catalog  # the parsed msgid -> msgstr map
    for key, value in catalog.items():
        if not isinstance(key, str) or not key:  # plural forms are (msgid, n) keys; "" is the header
            continue
        source, text = clean(key.split(_CONTEXT_SEP)[-1]), clean(value)
        if _letters(source) >= _MIN_LETTERS and _letters(text) >= _MIN_LETTERS and text != source:
            yield source, text


def package_entries(distribution: str, languages: Sequence[str]) -> list[Entry]:
    """Every usable translated string of `distribution` into `languages`, sorted, one per
    (language, source): a translation equal to its source (untranslated), plural forms, and
    strings with fewer than 3 letters are skipped."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise ValueError(f"package {distribution!r} is not installed (pip install -e '.[demo]')") from None
    unknown = sorted(set(languages) - set(LOCALES))
    if unknown:
        raise ValueError(f"no gettext locale known for {unknown} (known: {sorted(LOCALES)})")
    wanted = {loc: lang for lang in languages for loc in LOCALES[lang]}
    rank = {loc: i for lang in languages for i, loc in enumerate(LOCALES[lang])}
    files = sorted((f for f in dist.files or () if _locale_of(PurePosixPath(str(f))) in wanted),
                   key=lambda f: (rank[_locale_of(PurePosixPath(str(f)))], str(f)))
    if not files:
        raise ValueError(f"package {distribution!r} ships no .mo catalogue for {list(languages)}")
    seen: dict[tuple[str, str], Entry] = {}
    for f in files:
        lang = wanted[_locale_of(PurePosixPath(str(f)))]
        for source, text in _pairs(dist.locate_file(f).read_bytes()):
            seen.setdefault((lang, source), Entry(lang, source, text, dist.metadata["Name"],
                                                  dist.version, str(f)))
    return [seen[k] for k in sorted(seen)]

