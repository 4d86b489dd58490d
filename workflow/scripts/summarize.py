"""Rule summarize: the run's key numbers as CSV tables."""

from polyroute.logs import log_to
from polyroute.pipeline.summary import summarize

with log_to(snakemake.log[0]):
    summarize(
        snakemake.input.stats,
        selection_files=list(snakemake.input.selections),
        adapter_dirs=list(snakemake.input.adapters),
        outputs=dict(snakemake.output.items()),
    )
