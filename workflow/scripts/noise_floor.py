"""Rule noise_floor: the model's routing statistics beside the untrained architecture's."""

from polyroute.logs import log_to
from polyroute.pipeline.noise_floor import noise_floor

with log_to(snakemake.log[0]):
    noise_floor(
        stats=snakemake.input.stats,
        untrained=list(snakemake.input.untrained),
        settings=snakemake.params.stats,
        reference=snakemake.params.reference,
        targets=snakemake.params.targets,
        table_out=snakemake.output.table,
        figure_out=snakemake.output.figure,
    )
