"""Rule intervention_report: changes vs base, steering sweep, masking damage and routing shift."""

from polyroute.logs import log_to
from polyroute.pipeline.intervention_report import intervention_report

with log_to(snakemake.log[0]):
    intervention_report(
        eval_dirs=list(snakemake.input.evaluations),
        routing=snakemake.input.routing,
        expert_sets=list(snakemake.input.expert_sets),
        shift_stores=list(snakemake.input.shift_stores),
        changes_out=snakemake.output.changes,
        steering_out=snakemake.output.steering,
        shift_out=snakemake.output.routing_shift,
        sweep_figure=snakemake.output.sweep_figure,
        masking_figure=snakemake.output.masking_figure,
        shift_figure=snakemake.output.shift_figure,
        bootstrap=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
    )
