"""Rules extract_routing and revision_extract_routing: route one shard of the dataset's sequences
through the model, or through one of its revisions (model.revisions)."""

from polyroute.config import validate
from polyroute.logs import log_to
from polyroute.pipeline.routing import extract_routing
from polyroute.revisions import revision_config

revision = snakemake.wildcards.get("revision")  # only in revision_extract_routing
run_config = validate(snakemake.config)
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
        run_config=revision_config(run_config, revision) if revision else run_config,
        attrs=snakemake.params.get("attrs"),
    )
