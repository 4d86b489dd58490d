"""Rule download_dataset: records of one dataset and language, every split the run reads."""

from polyroute.logs import log_to
from polyroute.pipeline.data import download_dataset

with log_to(snakemake.log[0]):
    download_dataset(
        snakemake.wildcards.dataset,
        snakemake.wildcards.language,
        snakemake.output[0],
        splits=snakemake.params.splits,
        local_dir=snakemake.params.local_dir,
        max_items=snakemake.params.max_items,
    )
