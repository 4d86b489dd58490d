"""Rule select_experts: one subnetwork file for a selection method and target language."""

from polyroute.logs import log_to
from polyroute.pipeline.select import select_experts

with log_to(snakemake.log[0]):
    select_experts(
        method=snakemake.wildcards.method,
        target=snakemake.wildcards.target,
        settings=snakemake.params.settings,
        routing=snakemake.input.routing,
        model_info=snakemake.input.model_info,
        out=snakemake.output[0],
    )
