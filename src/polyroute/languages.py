"""Language codes: FLORES-style codes (``eng_Latn``) and each dataset's own codes.

The project speaks FLORES-200 codes everywhere (config, stores, figures): ISO 639-3 language +
``_`` + ISO 15924 script. Datasets name languages in their own ways; this module is the one place
that translates, in both directions:

=============  ========================================  ==============================
dataset        dataset's code                            example
=============  ========================================  ==============================
flores_plus    FLORES+ config (FLORES code; Chinese      ``eng_Latn``, ``cmn_Hans``
               renamed zho_* -> cmn_* in FLORES+)
belebele       FLORES code (+ romanised variants)        ``swh_Latn``, ``hin_Latn``
mgsm           ISO 639-1                                 ``sw``, ``zh``
tydiqa         lowercase English name (``id`` prefix)    ``english``, ``swahili``
polymath       ISO 639-1                                 ``ar``, ``ms``
multiblimp     ISO 639-3 (config name)                   ``eng``, ``fas``
=============  ========================================  ==============================

Pure Python, no heavy imports: the config validator uses it before any job starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "LANGUAGES",
    "DATASET_CODES",
    "LanguageInfo",
    "LanguageNotInDataset",
    "validate_code",
    "to_dataset_code",
    "from_dataset_code",
    "dataset_languages",
    "iso639_1",
    "iso639_3",
    "script",
    "display_name",
    "from_iso639_1",
    "from_iso639_3",
]


@dataclass(frozen=True)
class LanguageInfo:
    """One FLORES-style language variant."""

    code: str  # FLORES code, e.g. "eng_Latn"
    name: str  # English display name
    iso639_1: str | None  # two-letter code where one exists

    @property
    def iso639_3(self) -> str:
        return self.code.split("_", 1)[0]

    @property
    def script(self) -> str:
        return self.code.split("_", 1)[1]


# FLORES-200 codes (NLLB), plus Belebele's romanised variants. Columns: code, English name,
# ISO 639-1 ("" when the language has none). Where several variants share a 639-1 code, the
# first listed is the one `from_iso639_1` returns (the native script).
_TABLE = """
ace_Arab|Acehnese (Arabic script)|
ace_Latn|Acehnese|
acm_Arab|Mesopotamian Arabic|
acq_Arab|Ta'izzi-Adeni Arabic|
aeb_Arab|Tunisian Arabic|
afr_Latn|Afrikaans|af
ajp_Arab|South Levantine Arabic|
aka_Latn|Akan|ak
als_Latn|Albanian (Tosk)|sq
amh_Ethi|Amharic|am
apc_Arab|North Levantine Arabic|
arb_Arab|Arabic|ar
arb_Latn|Arabic (romanised)|
ars_Arab|Najdi Arabic|
ary_Arab|Moroccan Arabic|
arz_Arab|Egyptian Arabic|
asm_Beng|Assamese|as
ast_Latn|Asturian|
awa_Deva|Awadhi|
ayr_Latn|Central Aymara|ay
azb_Arab|South Azerbaijani|
azj_Latn|Azerbaijani|az
bak_Cyrl|Bashkir|ba
bam_Latn|Bambara|bm
ban_Latn|Balinese|
bel_Cyrl|Belarusian|be
bem_Latn|Bemba|
ben_Beng|Bengali|bn
ben_Latn|Bengali (romanised)|
bho_Deva|Bhojpuri|
bjn_Arab|Banjar (Arabic script)|
bjn_Latn|Banjar|
bod_Tibt|Tibetan|bo
bos_Latn|Bosnian|bs
bug_Latn|Buginese|
bul_Cyrl|Bulgarian|bg
cat_Latn|Catalan|ca
ceb_Latn|Cebuano|
ces_Latn|Czech|cs
cjk_Latn|Chokwe|
ckb_Arab|Central Kurdish|
crh_Latn|Crimean Tatar|
cym_Latn|Welsh|cy
dan_Latn|Danish|da
deu_Latn|German|de
dik_Latn|Southwestern Dinka|
dyu_Latn|Dyula|
dzo_Tibt|Dzongkha|dz
ell_Grek|Greek|el
eng_Latn|English|en
epo_Latn|Esperanto|eo
est_Latn|Estonian|et
eus_Latn|Basque|eu
ewe_Latn|Ewe|ee
fao_Latn|Faroese|fo
fij_Latn|Fijian|fj
fin_Latn|Finnish|fi
fon_Latn|Fon|
fra_Latn|French|fr
fur_Latn|Friulian|
fuv_Latn|Nigerian Fulfulde|
gaz_Latn|Oromo|om
gla_Latn|Scottish Gaelic|gd
gle_Latn|Irish|ga
glg_Latn|Galician|gl
grn_Latn|Guarani|gn
guj_Gujr|Gujarati|gu
hat_Latn|Haitian Creole|ht
hau_Latn|Hausa|ha
heb_Hebr|Hebrew|he
hin_Deva|Hindi|hi
hin_Latn|Hindi (romanised)|
hne_Deva|Chhattisgarhi|
hrv_Latn|Croatian|hr
hun_Latn|Hungarian|hu
hye_Armn|Armenian|hy
ibo_Latn|Igbo|ig
ilo_Latn|Ilocano|
ind_Latn|Indonesian|id
isl_Latn|Icelandic|is
ita_Latn|Italian|it
jav_Latn|Javanese|jv
jpn_Jpan|Japanese|ja
kab_Latn|Kabyle|
kac_Latn|Jingpho|
kam_Latn|Kamba|
kan_Knda|Kannada|kn
kas_Arab|Kashmiri (Arabic script)|ks
kas_Deva|Kashmiri (Devanagari)|
kat_Geor|Georgian|ka
kaz_Cyrl|Kazakh|kk
kbp_Latn|Kabiye|
kea_Latn|Kabuverdianu|
khk_Cyrl|Mongolian|mn
khm_Khmr|Khmer|km
kik_Latn|Kikuyu|ki
kin_Latn|Kinyarwanda|rw
kir_Cyrl|Kyrgyz|ky
kmb_Latn|Kimbundu|
kmr_Latn|Northern Kurdish|ku
knc_Arab|Central Kanuri (Arabic script)|
knc_Latn|Central Kanuri|
kon_Latn|Kikongo|kg
kor_Hang|Korean|ko
lao_Laoo|Lao|lo
lij_Latn|Ligurian|
lim_Latn|Limburgish|li
lin_Latn|Lingala|ln
lit_Latn|Lithuanian|lt
lmo_Latn|Lombard|
ltg_Latn|Latgalian|
ltz_Latn|Luxembourgish|lb
lua_Latn|Luba-Kasai|
lug_Latn|Ganda|lg
luo_Latn|Luo|
lus_Latn|Mizo|
lvs_Latn|Latvian|lv
mag_Deva|Magahi|
mai_Deva|Maithili|
mal_Mlym|Malayalam|ml
mar_Deva|Marathi|mr
min_Arab|Minangkabau (Arabic script)|
min_Latn|Minangkabau|
mkd_Cyrl|Macedonian|mk
mlt_Latn|Maltese|mt
mni_Beng|Meitei|
mos_Latn|Mossi|
mri_Latn|Maori|mi
mya_Mymr|Burmese|my
nld_Latn|Dutch|nl
nno_Latn|Norwegian Nynorsk|nn
nob_Latn|Norwegian Bokmal|nb
npi_Deva|Nepali|ne
npi_Latn|Nepali (romanised)|
nso_Latn|Northern Sotho|
nus_Latn|Nuer|
nya_Latn|Nyanja|ny
oci_Latn|Occitan|oc
ory_Orya|Odia|or
pag_Latn|Pangasinan|
pan_Guru|Punjabi|pa
pap_Latn|Papiamento|
pbt_Arab|Pashto|ps
pes_Arab|Persian|fa
plt_Latn|Malagasy|mg
pol_Latn|Polish|pl
por_Latn|Portuguese|pt
prs_Arab|Dari|
quy_Latn|Ayacucho Quechua|qu
ron_Latn|Romanian|ro
run_Latn|Rundi|rn
rus_Cyrl|Russian|ru
sag_Latn|Sango|sg
san_Deva|Sanskrit|sa
sat_Olck|Santali|
scn_Latn|Sicilian|
shn_Mymr|Shan|
sin_Sinh|Sinhala|si
sin_Latn|Sinhala (romanised)|
slk_Latn|Slovak|sk
slv_Latn|Slovenian|sl
smo_Latn|Samoan|sm
sna_Latn|Shona|sn
snd_Arab|Sindhi|sd
som_Latn|Somali|so
sot_Latn|Southern Sotho|st
spa_Latn|Spanish|es
srd_Latn|Sardinian|sc
srp_Cyrl|Serbian|sr
ssw_Latn|Swati|ss
sun_Latn|Sundanese|su
swe_Latn|Swedish|sv
swh_Latn|Swahili|sw
szl_Latn|Silesian|
tam_Taml|Tamil|ta
taq_Latn|Tamasheq|
taq_Tfng|Tamasheq (Tifinagh)|
tat_Cyrl|Tatar|tt
tel_Telu|Telugu|te
tgk_Cyrl|Tajik|tg
tgl_Latn|Tagalog|tl
tha_Thai|Thai|th
tir_Ethi|Tigrinya|ti
tpi_Latn|Tok Pisin|
tsn_Latn|Tswana|tn
tso_Latn|Tsonga|ts
tuk_Latn|Turkmen|tk
tum_Latn|Tumbuka|
tur_Latn|Turkish|tr
twi_Latn|Twi|tw
tzm_Tfng|Central Atlas Tamazight|
uig_Arab|Uyghur|ug
ukr_Cyrl|Ukrainian|uk
umb_Latn|Umbundu|
urd_Arab|Urdu|ur
urd_Latn|Urdu (romanised)|
uzn_Latn|Uzbek|uz
vec_Latn|Venetian|
vie_Latn|Vietnamese|vi
war_Latn|Waray|
wol_Latn|Wolof|wo
xho_Latn|Xhosa|xh
ydd_Hebr|Yiddish|yi
yor_Latn|Yoruba|yo
yue_Hant|Cantonese|
zho_Hans|Chinese (Simplified)|zh
zho_Hant|Chinese (Traditional)|
zsm_Latn|Malay|ms
zul_Latn|Zulu|zu
"""


def _parse_table(text: str) -> dict[str, LanguageInfo]:
    table: dict[str, LanguageInfo] = {}
    for line in text.strip().splitlines():
        code, name, one = line.split("|")
        table[code] = LanguageInfo(code=code, name=name, iso639_1=one or None)
    return table


LANGUAGES: dict[str, LanguageInfo] = _parse_table(_TABLE)

_CODE_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")

# Variants that are romanisations of a language normally written otherwise: they share the
# ISO codes of the base language but must never be what an ISO code maps back to.
_ROMANISED = {"arb_Latn", "ben_Latn", "hin_Latn", "npi_Latn", "sin_Latn", "urd_Latn"}

# ISO 639-3 macrolanguage / individual-language differences between FLORES and other sources
# (e.g. MultiBLiMP uses `fas`, FLORES uses `pes`).
_ISO3_ALIASES = {
    "fas": "pes_Arab", "per": "pes_Arab", "sqi": "als_Latn", "alb": "als_Latn",
    "ara": "arb_Arab", "lav": "lvs_Latn", "uzb": "uzn_Latn", "msa": "zsm_Latn",
    "zho": "zho_Hans", "cmn": "zho_Hans", "mon": "khk_Cyrl", "nep": "npi_Deva",
    "aze": "azj_Latn", "kur": "kmr_Latn", "orm": "gaz_Latn",
    "mlg": "plt_Latn", "pus": "pbt_Arab", "que": "quy_Latn", "aym": "ayr_Latn",
    "swa": "swh_Latn", "yid": "ydd_Hebr", "nor": "nob_Latn",
}


def _primary_by_iso1() -> dict[str, str]:
    out: dict[str, str] = {}
    for info in LANGUAGES.values():
        if info.iso639_1 and info.code not in _ROMANISED:
            out.setdefault(info.iso639_1, info.code)
    return out


def _primary_by_iso3() -> dict[str, str]:
    out: dict[str, str] = {}
    for info in LANGUAGES.values():
        if info.code not in _ROMANISED:
            out.setdefault(info.iso639_3, info.code)
    for alias, code in _ISO3_ALIASES.items():
        out.setdefault(alias, code)
    return out


_BY_ISO1 = _primary_by_iso1()
_BY_ISO3 = _primary_by_iso3()


# --- per-dataset code tables (FLORES code -> dataset code) ------------------------------------

def _identity(codes: str) -> dict[str, str]:
    return {c: c for c in codes.split()}


def _via_iso1(iso1_codes: str) -> dict[str, str]:
    return {_BY_ISO1[c]: c for c in iso1_codes.split()}


def _via_iso3(iso3_codes: str) -> dict[str, str]:
    """ISO 639-3 codes that have a FLORES counterpart; the others (e.g. Gothic) are skipped."""
    return {_BY_ISO3[c]: c for c in iso3_codes.split() if c in _BY_ISO3}


# FLORES+ (openlanguagedata/flores_plus): one config per language variant. FLORES+ renamed the
# Chinese variants to their individual-language code (cmn); romanised variants are Belebele-only.
_FLORES_PLUS_RENAMES = {"zho_Hans": "cmn_Hans", "zho_Hant": "cmn_Hant"}
_FLORES_PLUS = {
    code: _FLORES_PLUS_RENAMES.get(code, code) for code in LANGUAGES if code not in _ROMANISED
}

# Belebele (facebook/belebele): 122 configs named by FLORES code, split "test".
_BELEBELE = _identity("""
acm_Arab afr_Latn als_Latn amh_Ethi apc_Arab arb_Arab arb_Latn ars_Arab ary_Arab arz_Arab
asm_Beng azj_Latn bam_Latn ben_Beng ben_Latn bod_Tibt bul_Cyrl cat_Latn ceb_Latn ces_Latn
ckb_Arab dan_Latn deu_Latn ell_Grek eng_Latn est_Latn eus_Latn fin_Latn fra_Latn fuv_Latn
gaz_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hin_Latn hrv_Latn hun_Latn
hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kac_Latn kan_Knda
kat_Geor kaz_Cyrl kea_Latn khk_Cyrl khm_Khmr kin_Latn kir_Cyrl kor_Hang lao_Laoo lin_Latn
lit_Latn lug_Latn luo_Latn lvs_Latn mal_Mlym mar_Deva mkd_Cyrl mlt_Latn mri_Latn mya_Mymr
nld_Latn nob_Latn npi_Deva npi_Latn nso_Latn nya_Latn ory_Orya pan_Guru pbt_Arab pes_Arab
plt_Latn pol_Latn por_Latn ron_Latn rus_Cyrl shn_Mymr sin_Latn sin_Sinh slk_Latn slv_Latn
sna_Latn snd_Arab som_Latn sot_Latn spa_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn
tam_Taml tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi tsn_Latn tso_Latn tur_Latn ukr_Cyrl
urd_Arab urd_Latn uzn_Latn vie_Latn war_Latn wol_Latn xho_Latn yor_Latn zho_Hans zho_Hant
zsm_Latn zul_Latn
""")

# MGSM (juletxara/mgsm): 11 configs, ISO 639-1.
_MGSM = _via_iso1("bn de en es fr ja ru sw te th zh")

# TyDiQA-GoldP (google-research-datasets/tydiqa, config secondary_task): one config for all
# languages; each row's `id` starts with the language's English name and a dash.
_TYDIQA = {
    "arb_Arab": "arabic", "ben_Beng": "bengali", "eng_Latn": "english", "fin_Latn": "finnish",
    "ind_Latn": "indonesian", "kor_Hang": "korean", "rus_Cyrl": "russian",
    "swh_Latn": "swahili", "tel_Telu": "telugu",
}

# PolyMath (Qwen/PolyMath): 18 configs, ISO 639-1.
_POLYMATH = _via_iso1("ar bn de en es fr id it ja ko ms pt ru sw te th vi zh")

# MultiBLiMP (jumelet/multiblimp): 101 configs named by ISO 639-3; historical languages and
# those without a FLORES variant (e.g. got, hit, wbp) are not reachable from FLORES codes.
_MULTIBLIMP = _via_iso3("""
abk aln amh apu aqz arb azz bel ben bho bor bre bua bul cat ces chu cym dan deu egy ell eng
est eus fao fas fin fra frm fro gla gle glg got grc guj hbo hbs heb hin hit hsb hun hye hyw
isl ita kat kaz kir kmr koi kpv krl kxh lat lav lij lit mar mdf mkd myv nds nhi nld olo orv
ota pcm pol por quc ron rus sah san slk slv sme sms spa sqi swe tam tpn ttc tur uig ukr urb
urd uzb vep wbp wol xcl xnr xpg yrl
""")

DATASET_CODES: dict[str, dict[str, str]] = {
    "flores_plus": _FLORES_PLUS,
    "belebele": _BELEBELE,
    "mgsm": _MGSM,
    "tydiqa": _TYDIQA,
    "polymath": _POLYMATH,
    "multiblimp": _MULTIBLIMP,
}

_REVERSE: dict[str, dict[str, str]] = {
    ds: {v: k for k, v in table.items()} for ds, table in DATASET_CODES.items()
}


class LanguageNotInDataset(ValueError):
    """A valid language that a dataset does not have."""

    def __init__(self, code: str, dataset: str, available: list[str]):
        self.code, self.dataset, self.available = code, dataset, available
        super().__init__(
            f"language '{code}' is not in dataset '{dataset}'; it has: {', '.join(available)}"
        )


def validate_code(code: str) -> str:
    """Return `code` if it is a known FLORES-style code, else raise ValueError naming it."""
    if not isinstance(code, str) or code not in LANGUAGES:
        hint = ""
        if isinstance(code, str) and not _CODE_RE.match(code):
            guess = _BY_ISO1.get(code.lower()) or _BY_ISO3.get(code.lower())
            hint = f"; did you mean '{guess}'?" if guess else ""
        raise ValueError(
            f"unknown language code {code!r} (expected FLORES-style like eng_Latn){hint}"
        )
    return code


def _check_dataset(dataset: str) -> dict[str, str]:
    try:
        return DATASET_CODES[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r} (known: {', '.join(sorted(DATASET_CODES))})"
        ) from None


def to_dataset_code(code: str, dataset: str) -> str:
    """The dataset's own name for FLORES language `code` (raises LanguageNotInDataset)."""
    table = _check_dataset(dataset)
    validate_code(code)
    if code not in table:
        raise LanguageNotInDataset(code, dataset, dataset_languages(dataset))
    return table[code]


def from_dataset_code(dataset_code: str, dataset: str) -> str:
    """The FLORES code for a dataset's own language name."""
    _check_dataset(dataset)
    try:
        return _REVERSE[dataset][dataset_code]
    except KeyError:
        known = ", ".join(sorted(_REVERSE[dataset]))
        raise ValueError(
            f"unknown {dataset} language code {dataset_code!r} (known: {known})"
        ) from None


def dataset_languages(dataset: str) -> list[str]:
    """FLORES codes available in `dataset`, sorted."""
    return sorted(_check_dataset(dataset))


def iso639_1(code: str) -> str | None:
    """Two-letter ISO 639-1 code, or None where the language has none."""
    return LANGUAGES[validate_code(code)].iso639_1


def iso639_3(code: str) -> str:
    """ISO 639-3 code (the FLORES code's language part)."""
    return LANGUAGES[validate_code(code)].iso639_3


def script(code: str) -> str:
    """ISO 15924 script code (the FLORES code's script part)."""
    return LANGUAGES[validate_code(code)].script


def display_name(code: str) -> str:
    """English name, for figure labels."""
    return LANGUAGES[validate_code(code)].name


def from_iso639_1(iso: str) -> str:
    """FLORES code of the main variant of an ISO 639-1 language (``sw`` -> ``swh_Latn``)."""
    try:
        return _BY_ISO1[iso]
    except KeyError:
        raise ValueError(f"unknown ISO 639-1 code {iso!r}") from None


def from_iso639_3(iso: str) -> str:
    """FLORES code of the main variant of an ISO 639-3 language (``fas`` -> ``pes_Arab``)."""
    try:
        return _BY_ISO3[iso]
    except KeyError:
        raise ValueError(f"unknown ISO 639-3 code {iso!r}") from None
