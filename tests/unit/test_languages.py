"""polyroute.languages: FLORES codes, ISO codes and each dataset's own language codes."""

import re

import pytest

from polyroute import languages as L


def test_validate_code_accepts_known_and_names_unknown():
    assert L.validate_code("eng_Latn") == "eng_Latn"
    with pytest.raises(ValueError, match=r"unknown language code 'xx' \(expected FLORES-style like eng_Latn\)"):
        L.validate_code("xx")
    with pytest.raises(ValueError, match="did you mean 'swh_Latn'"):
        L.validate_code("sw")
    with pytest.raises(ValueError, match="unknown language code 'eng_latn'"):
        L.validate_code("eng_latn")  # case matters: codes are used as file and store names


def test_table_is_well_formed():
    assert len(L.LANGUAGES) >= 200
    pattern = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
    for code, info in L.LANGUAGES.items():
        assert pattern.match(code), code
        assert info.code == code and info.name
        assert info.iso639_1 is None or re.fullmatch(r"[a-z]{2}", info.iso639_1)


@pytest.mark.parametrize(
    "code, one, three, scr, name",
    [
        ("eng_Latn", "en", "eng", "Latn", "English"),
        ("swh_Latn", "sw", "swh", "Latn", "Swahili"),
        ("zho_Hans", "zh", "zho", "Hans", "Chinese (Simplified)"),
        ("arb_Arab", "ar", "arb", "Arab", "Arabic"),
        ("pes_Arab", "fa", "pes", "Arab", "Persian"),
        ("yue_Hant", None, "yue", "Hant", "Cantonese"),
        ("tel_Telu", "te", "tel", "Telu", "Telugu"),
    ],
)
def test_iso_script_and_name(code, one, three, scr, name):
    assert L.iso639_1(code) == one
    assert L.iso639_3(code) == three
    assert L.script(code) == scr
    assert L.display_name(code) == name


def test_iso_lookups_prefer_native_script():
    assert L.from_iso639_1("sw") == "swh_Latn"
    assert L.from_iso639_1("hi") == "hin_Deva"  # not the romanised hin_Latn
    assert L.from_iso639_3("fas") == "pes_Arab"  # macrolanguage alias
    assert L.from_iso639_3("ben") == "ben_Beng"
    with pytest.raises(ValueError, match="unknown ISO 639-1 code 'qq'"):
        L.from_iso639_1("qq")


def test_iso639_1_unique_per_language():
    seen: dict[str, str] = {}
    for info in L.LANGUAGES.values():
        if info.iso639_1:
            assert info.iso639_1 not in seen, (info.code, seen.get(info.iso639_1))
            seen[info.iso639_1] = info.code


@pytest.mark.parametrize(
    "code, dataset, expected",
    [
        ("eng_Latn", "flores_plus", "eng_Latn"),
        ("zho_Hans", "flores_plus", "cmn_Hans"),  # FLORES+ renamed Chinese configs
        ("zho_Hans", "belebele", "zho_Hans"),
        ("hin_Latn", "belebele", "hin_Latn"),
        ("swh_Latn", "mgsm", "sw"),
        ("zho_Hans", "mgsm", "zh"),
        ("ben_Beng", "tydiqa", "bengali"),
        ("swh_Latn", "tydiqa", "swahili"),
        ("zsm_Latn", "polymath", "ms"),
        ("ind_Latn", "polymath", "id"),
        ("eng_Latn", "multiblimp", "eng"),
        ("pes_Arab", "multiblimp", "fas"),
        ("lvs_Latn", "multiblimp", "lav"),
    ],
)
def test_to_dataset_code(code, dataset, expected):
    assert L.to_dataset_code(code, dataset) == expected
    assert L.from_dataset_code(expected, dataset) == code


def test_dataset_sizes_match_dataset_cards():
    sizes = {ds: len(L.dataset_languages(ds)) for ds in L.DATASET_CODES}
    assert sizes["mgsm"] == 11
    assert sizes["tydiqa"] == 9
    assert sizes["polymath"] == 18
    assert sizes["belebele"] == 122
    assert sizes["flores_plus"] >= 200
    assert 50 <= sizes["multiblimp"] <= 101


@pytest.mark.parametrize("dataset", sorted(L.DATASET_CODES))
def test_dataset_tables_round_trip(dataset):
    table = L.DATASET_CODES[dataset]
    assert len(set(table.values())) == len(table), "two FLORES codes share a dataset code"
    for code, ds_code in table.items():
        assert L.validate_code(code) == code
        assert L.from_dataset_code(L.to_dataset_code(code, dataset), dataset) == code
    assert L.dataset_languages(dataset) == sorted(table)


def test_language_not_in_dataset_message():
    with pytest.raises(L.LanguageNotInDataset) as info:
        L.to_dataset_code("fin_Latn", "mgsm")
    err = info.value
    assert isinstance(err, ValueError)
    msg = str(err)
    assert "'fin_Latn'" in msg and "'mgsm'" in msg
    assert "swh_Latn" in msg and "eng_Latn" in msg  # lists what the dataset has
    assert err.available == L.dataset_languages("mgsm")


def test_unknown_dataset_and_dataset_code():
    with pytest.raises(ValueError, match="unknown dataset 'xnli'"):
        L.to_dataset_code("eng_Latn", "xnli")
    with pytest.raises(ValueError, match="unknown tydiqa language code 'japanese'"):
        L.from_dataset_code("japanese", "tydiqa")
    with pytest.raises(ValueError, match="unknown language code"):
        L.to_dataset_code("en", "mgsm")  # a dataset code is not a FLORES code
