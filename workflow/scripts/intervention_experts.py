"""Rule intervention_experts: one experiment's expert set from the routing stores, as JSON."""

from polyroute.logs import log_to
from polyroute.pipeline.interventions import build_expert_set

with log_to(snakemake.log[0]):
    build_expert_set(
        settings=snakemake.params.settings,
        routing=snakemake.input.routing,
        task_routing=snakemake.input.get("task_routing"),
        model_info=snakemake.input.model_info,
        out=snakemake.output[0],
    )
