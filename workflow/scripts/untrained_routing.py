"""Rule untrained_routing: the routing dataset through the model's architecture with untrained weights."""

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
        shard=0,
        shards=1,
        out=snakemake.output[0],
        run_config=validate(snakemake.config),
        per_language=snakemake.params.per_language,
        untrained_seed=int(snakemake.wildcards.seed),
    )
