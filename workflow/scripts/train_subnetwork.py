"""Rule train_subnetwork: train only the selected experts, write the delta and its log."""

from polyroute.logs import log_to
from polyroute.pipeline.train import train_subnetwork

with log_to(snakemake.log[0]):
    train_subnetwork(
        model=snakemake.params.model,
        subnetwork=snakemake.input.selection,
        data=snakemake.input.data,
        dataset=snakemake.params.dataset,
        split=snakemake.params.split,
        settings=snakemake.params.training,
        out=snakemake.output[0],
    )
