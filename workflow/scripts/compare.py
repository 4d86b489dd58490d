"""Rule compare: every member's per-layer statistics side by side, as a store, tables and figures."""

from polyroute.logs import log_to
from polyroute.pipeline.compare import compare

with log_to(snakemake.log[0]):
    compare(
        members=snakemake.params.members,
        untrained=list(snakemake.input.untrained),
        settings=snakemake.params.stats,
        reference=snakemake.params.reference,
        run=snakemake.params.run,
        store_out=snakemake.output.store,
        tables_out=snakemake.output.tables,
        figures={name: getattr(snakemake.output, name) for name in snakemake.params.figures},
    )
