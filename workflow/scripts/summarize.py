"""Rule summarize: the run's key numbers as CSV tables."""

from polyroute.logs import log_to
from polyroute.pipeline.summary import summarize

with log_to(snakemake.log[0]):
    summarize(
        snakemake.input.stats,
        selection_files=list(snakemake.input.selections),
        adapter_dirs=list(snakemake.input.adapters),
        outputs={name: path for name, path in snakemake.output.items() if name != "gains_figure"},
        eval_dirs=list(snakemake.input.evaluations),
        gains_figure=snakemake.output.get("gains_figure"),
        bootstrap=snakemake.params.bootstrap,
        seed=snakemake.params.seed,
    )
