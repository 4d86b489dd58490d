"""Rule extract_routing: route one shard of the dataset's sequences through the model."""

from polyroute.config import validate
from polyroute.logs import log_to
from polyroute.pipeline.routing import extract_routing

with log_to(snakemake.log[0]):
    extract_routing(
        data_files=list(snakemake.input.data),
        dataset=snakemake.wildcards.dataset,
        split=snakemake.params.split,
        languages=snakemake.params.languages,
        model=snakemake.params.model,
        extraction=snakemake.params.extraction,
        shard=int(snakemake.wildcards.shard),
        shards=snakemake.params.shards,
        out=snakemake.output[0],
        run_config=validate(snakemake.config),
    )
