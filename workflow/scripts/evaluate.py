"""Rule evaluate: one variant of the model on one task, a result file per language."""

from polyroute.logs import log_to
from polyroute.pipeline.evaluate import evaluate_variant

with log_to(snakemake.log[0]):
    evaluate_variant(
        model=snakemake.params.model,
        variant=snakemake.wildcards.variant,
        source=snakemake.input.source[0] if snakemake.input.source else None,
        kind=snakemake.params.variant["kind"],
        strength=snakemake.params.variant["strength"],
        task=snakemake.wildcards.task,
        data=dict(zip(snakemake.params.languages, snakemake.input.data)),
        settings=snakemake.params.settings,
        out=snakemake.output[0],
    )
