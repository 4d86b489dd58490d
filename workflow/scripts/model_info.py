"""Rule model_info: the model's MoE layout from its config, settings checked against it."""

from polyroute.config import validate
from polyroute.logs import log_to
from polyroute.pipeline.model_info import model_info

with log_to(snakemake.log[0]):
    model_info(snakemake.params.model, snakemake.output[0], run_config=validate(snakemake.config))
