"""Rule task_routing: route the English in-task text (Bandarkar's task experts) into one store."""

from polyroute.config import validate
from polyroute.logs import log_to
from polyroute.pipeline.routing import extract_routing

with log_to(snakemake.log[0]):
    run_config = validate(snakemake.config)
    extract_routing(
        data_files=[snakemake.input.data],
        dataset=run_config["interventions"]["task_data"]["name"],
        split=snakemake.params.split,
        languages=snakemake.params.languages,
        model=snakemake.params.model,
        extraction=snakemake.params.extraction,
        shard=0,
        shards=1,
        out=snakemake.output[0],
        run_config=run_config,
    )
