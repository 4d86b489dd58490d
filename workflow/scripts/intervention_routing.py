"""Rule intervention_routing: the routing dataset's first sequences routed under one experiment."""

from polyroute.config import validate
from polyroute.logs import log_to
from polyroute.pipeline.interventions import extract_routing_under

with log_to(snakemake.log[0]):
    run_config = validate(snakemake.config)
    extract_routing_under(
        expert_set=snakemake.input.expert_set,
        data_files=list(snakemake.input.data),
        dataset=run_config["datasets"]["routing"]["name"],
        split=snakemake.params.split,
        languages=snakemake.params.languages,
        model=snakemake.params.model,
        extraction=snakemake.params.extraction,
        per_language=snakemake.params.per_language,
        out=snakemake.output[0],
        run_config=run_config,
    )
