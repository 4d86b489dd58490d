"""Rule demo_corpus: the installed packages' gettext catalogues as the demo's parallel corpus."""

from polyroute.demo.corpus import build_corpus
from polyroute.logs import log_to

with log_to(snakemake.log[0]):
    build_corpus(snakemake.output[0], snakemake.params.languages, heldout=snakemake.params.heldout,
                 seed=snakemake.params.seed)
