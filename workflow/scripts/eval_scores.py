"""Rule eval_scores: the base model's per-language score (language,score CSV) for the routing statistics."""

from polyroute.logs import log_to
from polyroute.pipeline.summary import write_scores

with log_to(snakemake.log[0]):
    write_scores(snakemake.input[0], metric=snakemake.params.metric, out=snakemake.output[0])
