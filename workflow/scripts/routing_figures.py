"""Rule routing_figures: every figure of the statistics store (PNG for the report, SVG beside it)."""

from polyroute.logs import log_to
from polyroute.pipeline.stats import routing_figures

with log_to(snakemake.log[0]):
    routing_figures(
        snakemake.input.stats,
        expected=dict(snakemake.output.items()),
        target=snakemake.params.target,
        high_resource=snakemake.params.high_resource,
        heatmap_layers=snakemake.params.heatmap_layers,
    )
