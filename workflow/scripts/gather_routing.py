"""Rule gather_routing: concatenate the shard stores into one labelled routing store."""

from polyroute.logs import log_to
from polyroute.pipeline.routing import gather_routing

with log_to(snakemake.log[0]):
    gather_routing(list(snakemake.input.shards), snakemake.output[0], languages=snakemake.params.languages)
