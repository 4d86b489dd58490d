"""The embedded demo: a multilingual data bundle, a corpus of human translations, and its models.

- `polyroute.demo.bundle`: hand-written parallel text and task items in each real dataset's schema
  (``resources/demo/<dataset>/...``), rebuilt byte-identically from ``resources/demo/source``.
- `polyroute.demo.corpus` (with `polyroute.demo.catalogues`): translations from installed packages'
  gettext catalogues, parallel across languages, as FLORES+ rows (``resources/demo/corpus``).
- `polyroute.demo.model`: tokenizer trainer, Qwen3-MoE config, the tiny random model.
- `polyroute.demo.pretrain`: the pretrained demo MoE (``resources/models/polyroute-demo-qwen3moe``).

Command line (from the repository root)::

    python -m polyroute.demo bundle --source resources/demo/source --out resources/demo
    python -m polyroute.demo build --out resources/models/polyroute-tiny-qwen3moe
    python -m polyroute.demo corpus --out resources/demo/corpus          # needs pip install -e '.[demo]'
    python -m polyroute.demo pretrain --out resources/models/polyroute-demo-qwen3moe
"""

from polyroute.demo.bundle import DEV_SIZE, SENTENCES_PER_ARTICLE, build_bundle
from polyroute.demo.corpus import build_corpus
from polyroute.demo.model import MODEL_DEFAULTS, build_model, train_tokenizer
from polyroute.demo.pretrain import Settings, pretrain

__all__ = [
    "DEV_SIZE",
    "SENTENCES_PER_ARTICLE",
    "MODEL_DEFAULTS",
    "build_bundle",
    "build_corpus",
    "build_model",
    "train_tokenizer",
    "Settings",
    "pretrain",
]
