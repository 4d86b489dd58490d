"""Rule download_model: a hub model's weights into the Hugging Face cache, on the login node."""

from polyroute.logs import log_to
from polyroute.pipeline.model_info import download_model

with log_to(snakemake.log[0]):
    download_model(snakemake.params.model, snakemake.output[0])
