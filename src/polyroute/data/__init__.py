"""Datasets: a registry (Hub id, configs, splits, fields) and loaders that map each to records.

Record kinds (columns beyond ``id``, ``language`` (FLORES code), ``parallel_id``):

=================  ===============  ==============================================
kind               datasets         columns
=================  ===============  ==============================================
parallel_text      flores_plus      text
multiple_choice    belebele         context, question, choices (4 str), answer (0-based int)
numeric_answer     mgsm, polymath   question, answer (str), cot ("" if none)
extractive_qa      tydiqa           context, question, answers (list of str)
minimal_pair       multiblimp       good, bad, phenomenon
=================  ===============  ==============================================

Local layout (the demo bundle and test fixtures): rows in each dataset's REAL source schema
(see `polyroute.data.registry`), one JSON object per line, mirroring the Hub config/split names:

=============  ================================================  ==============================
dataset        file under ``local_dir``                          example
=============  ================================================  ==============================
flores_plus    flores_plus/<FLORES+ code>/<dev|devtest>.jsonl    flores_plus/eng_Latn/dev.jsonl
belebele       belebele/<FLORES code>/test.jsonl                 belebele/swh_Latn/test.jsonl
mgsm           mgsm/<ISO 639-1>/<train|test>.jsonl               mgsm/sw/test.jsonl
tydiqa         tydiqa/secondary_task/<train|validation>.jsonl    (all languages in one file,
                                                                  selected by ``id`` prefix)
polymath       polymath/<ISO 639-1>/<top|high|medium|low>.jsonl  polymath/en/low.jsonl
multiblimp     multiblimp/<ISO 639-3>/train.jsonl                multiblimp/eng/train.jsonl
=============  ================================================  ==============================

Note FLORES+ config names: Chinese is ``cmn_Hans`` / ``cmn_Hant`` (FLORES code ``zho_Hans``).

Usage::

    from polyroute.data import load_records, download
    df = load_records("belebele", "swh_Latn", local_dir="resources/demo", max_items=20)
    download("flores_plus", "eng_Latn", "resources/data/flores_plus/eng_Latn.parquet")
"""

from polyroute.data.loading import download, load_records, local_path, write_parquet_atomic
from polyroute.data.records import COMMON_COLUMNS, KIND_COLUMNS, columns
from polyroute.data.registry import DATASETS, DatasetSpec, RowContext, get_spec
from polyroute.languages import LanguageNotInDataset

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "RowContext",
    "get_spec",
    "load_records",
    "download",
    "local_path",
    "write_parquet_atomic",
    "columns",
    "COMMON_COLUMNS",
    "KIND_COLUMNS",
    "LanguageNotInDataset",
]
