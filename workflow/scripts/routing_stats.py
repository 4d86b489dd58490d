"""Rule routing_stats: every statistic of METHODS.md sections 2-4, as a store and CSV tables."""

from polyroute.logs import log_to
from polyroute.pipeline.stats import routing_stats

with log_to(snakemake.log[0]):
    routing_stats(
        snakemake.input.routing,
        stats_out=snakemake.output.stats,
        tables_out=snakemake.output.tables,
        settings=snakemake.params.stats,
        reference=snakemake.params.reference,
    )
