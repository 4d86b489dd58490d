"""Rule pretrain_demo_model: the demo MoE trained from its seed on the corpus and the bundle."""

from polyroute.demo.pretrain import Settings, pretrain
from polyroute.logs import log_to

with log_to(snakemake.log[0]):
    pretrain(snakemake.output[0], snakemake.input.corpus, snakemake.input.bundle,
             langs=snakemake.params.languages,
             settings=Settings(seed=snakemake.params.seed),  # its fixed thread count, not --cores
             checkpoints=snakemake.params.checkpoints)
