"""Language consistency: lingua on the demo's FLORES+ sentences, blank text, unsupported languages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyroute.evaluate.langid import (
    consistency_flags,
    identify,
    is_consistent,
    is_supported,
    language_consistency,
)
from polyroute.languages import iso639_1, to_dataset_code

FLORES = Path(__file__).resolve().parents[2] / "resources" / "demo" / "flores_plus"
DEMO_LANGUAGES = [
    "eng_Latn", "fra_Latn", "deu_Latn", "spa_Latn", "swh_Latn",
    "rus_Cyrl", "ell_Grek", "arb_Arab", "hin_Deva", "zho_Hans",
]

pytestmark = pytest.mark.slow  # lingua loads a script's language models on first use (seconds)


def flores_sentences(language: str, n: int) -> list[str]:
    path = FLORES / to_dataset_code(language, "flores_plus") / "devtest.jsonl"
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for _, line in zip(range(n), lines)]


@pytest.mark.parametrize("language", DEMO_LANGUAGES)
def test_flores_sentences_are_consistent_with_their_language(language):
    sentences = flores_sentences(language, 8)
    assert language_consistency(sentences, language) == 1.0
    assert identify(sentences[0]) == iso639_1(language)


def test_other_languages_are_not_consistent():
    english = flores_sentences("eng_Latn", 4)
    assert language_consistency(english, "fra_Latn") == 0.0
    mixed = flores_sentences("swh_Latn", 2) + english[:1] + flores_sentences("zho_Hans", 1)
    assert consistency_flags(mixed, "swh_Latn") == [True, True, False, False]
    assert language_consistency(mixed, "swh_Latn") == 0.5


def test_blank_generations_count_as_not_consistent():
    assert identify("") is None
    assert identify(" \n\t ") is None
    assert not is_consistent("", "eng_Latn")
    sentence = flores_sentences("deu_Latn", 1)[0]
    assert language_consistency([sentence, "", "   "], "deu_Latn") == pytest.approx(1 / 3)


def test_unsupported_and_invalid_languages_fail_with_one_line():
    assert is_supported("eng_Latn") and is_supported("por_Latn")
    assert not is_supported("hin_Latn")  # romanised Hindi: no ISO 639-1 code of its own
    assert not is_supported("ace_Latn")  # no ISO 639-1 code
    assert not is_supported("amh_Ethi")  # ISO 639-1 "am", which lingua lacks
    with pytest.raises(ValueError, match="cannot be measured for 'amh_Ethi'"):
        language_consistency(["ሰላም"], "amh_Ethi")
    with pytest.raises(ValueError, match="xx_Yyyy"):
        is_consistent("hello", "xx_Yyyy")
    with pytest.raises(ValueError, match="non-empty list"):
        language_consistency([], "eng_Latn")
    with pytest.raises(ValueError, match="non-empty list"):
        language_consistency("a bare string", "eng_Latn")
